"""LangChain's ``ChatOpenAI`` as a second ``/v1`` client: ``bind_tools``, the model's tool
call, the ``ToolMessage`` with the result, the answer; on every provider."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from tests.conftest import ThreadedServer
from tests.fakes import FakeProviderServer, Reply, ToolCalls
from tests.test_openai_api import api_key, user
from tests.test_v1_fidelity import MODELS

__all__ = ["api_key", "user"]  # fixtures, imported to be used here


@tool
def get_weather(city: str) -> str:
    """The weather now in a city."""
    return f'{{"city": "{city}", "sky": "sunny"}}'


@pytest.mark.parametrize("provider", sorted(MODELS))
async def test_bind_tools_round_trip(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer, provider: str
) -> None:
    fake_provider.script(
        ToolCalls([("get_weather", '{"city": "Paris"}')]), Reply("It is sunny in Paris.")
    )
    model = ChatOpenAI(
        model=MODELS[provider],
        base_url=f"{llm_server.base_url}/v1",
        api_key=SecretStr(api_key),
        max_retries=0,
    ).bind_tools([get_weather])
    question = HumanMessage("What is the weather in Paris?")
    asked = await model.ainvoke([question])
    assert [(call["name"], call["args"]) for call in asked.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    call = asked.tool_calls[0]
    result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    answer = await model.ainvoke([question, asked, result])
    assert answer.content == "It is sunny in Paris."
    assert answer.response_metadata["finish_reason"] == "stop"
