"""Tool calling through ``/v1/chat/completions`` on Cohere beyond what every provider shares
(tests/test_v1_tools.py): what Cohere v2 has no form of is a 400 naming the field, before any
request reaches Cohere; strict schemas go as its request-level ``strict_tools``; an assistant's
text beside its tool calls goes back as the ``tool_plan``."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import ThreadedServer
from tests.fakes import FakeProviderServer, Reply
from tests.test_openai_api import api_key, sdk, user
from tests.test_v1_fidelity import MODELS
from tests.test_v1_tools import QUESTION, RESULT, TIME_TOOL, WEATHER_TOOL

__all__ = ["api_key", "user"]  # fixtures, imported to be used here


def _strict(tool: dict[str, Any]) -> dict[str, Any]:
    return {**tool, "function": {**tool["function"], "strict": True}}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "get_time"}}}, "tool_choice"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"tools": [_strict(WEATHER_TOOL), TIME_TOOL]}, "tools"),
    ],
    ids=["named-choice", "no-parallel", "some-strict"],
)
async def test_what_cohere_has_no_form_of_is_refused(
    llm_server: ThreadedServer,
    api_key: str,
    fake_provider: FakeProviderServer,
    fields: dict[str, Any],
    param: str,
) -> None:
    ask: dict[str, Any] = {"messages": [QUESTION], "tools": [WEATHER_TOOL, TIME_TOOL], **fields}
    with pytest.raises(openai.BadRequestError) as error:
        await sdk(llm_server, api_key).chat.completions.create(model=MODELS["cohere"], **ask)
    assert isinstance(error.value.body, dict)
    assert error.value.body["param"] == param
    assert error.value.body["code"] == "unsupported_parameter"
    assert fake_provider.requests_for("cohere") == []


async def test_strict_tools_and_the_tool_plan(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply("ok"))
    call: dict[str, Any] = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_time", "arguments": "{}"},
    }
    ask: dict[str, Any] = {
        "messages": [
            QUESTION,
            {"role": "assistant", "content": "I will look at the clock.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": RESULT},
        ],
        "tools": [_strict(WEATHER_TOOL), _strict(TIME_TOOL)],
        "parallel_tool_calls": True,
    }
    await sdk(llm_server, api_key).chat.completions.create(model=MODELS["cohere"], **ask)
    sent = fake_provider.requests_for("cohere")[-1].body
    assert isinstance(sent, dict)
    assert sent["strict_tools"] is True
    assert [tool["function"] for tool in sent["tools"]] == [
        WEATHER_TOOL["function"],
        TIME_TOOL["function"],
    ]
    assert "parallel_tool_calls" not in sent
    assert sent["messages"][-2] == {
        "role": "assistant",
        "tool_calls": [call],
        "tool_plan": "I will look at the clock.",
    }
