"""Tool calling through ``/v1/chat/completions`` on every provider, with the official ``openai``
SDK as the client: a complete agent loop (the model asks for a tool, the client runs it and
sends the result, the model answers), streamed and not, parallel calls, and ``tool_choice``.
What each provider received is checked in its native form (``NATIVE``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests import tool_native_anthropic, tool_native_cohere, tool_native_gemini
from tests.conftest import ThreadedServer
from tests.fakes import FakeProviderServer, Reply, ToolCalls
from tests.test_openai_api import api_key, sdk, user
from tests.test_v1_fidelity import MODELS

__all__ = ["api_key", "user"]  # fixtures, imported to be used here

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now in a city",
        "parameters": WEATHER_SCHEMA,
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
QUESTION = {"role": "user", "content": "What is the weather in Paris?"}
RESULT = '{"temperature_c": 21, "sky": "sunny"}'


def _openai_native(sent: dict[str, Any], call_id: str) -> None:
    assert sent["tools"] == [WEATHER_TOOL]
    assert sent["tool_choice"] == "auto"
    assert sent["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": RESULT, "tool_call_id": call_id},
    ]


OTHERS = {
    "anthropic": tool_native_anthropic,
    "cohere": tool_native_cohere,
    "gemini": tool_native_gemini,
}
# provider -> a check of the request that carried the tool result back, in its native form.
NATIVE: dict[str, Callable[[dict[str, Any], str], None]] = {
    "openai": _openai_native,
    **{name: module.round_trip for name, module in OTHERS.items() if module.round_trip},
}
# provider -> tool_choice as the client sends it -> (the field's dotted path in the provider's
# body, its value there).
NATIVE_CHOICE: dict[str, dict[str, tuple[str, Any]]] = {
    "openai": {
        "required": ("tool_choice", "required"),
        "none": ("tool_choice", "none"),
        "named": ("tool_choice", {"type": "function", "function": {"name": "get_time"}}),
    },
    **{name: module.choices for name, module in OTHERS.items() if module.choices},
}
CHOICES: dict[str, Any] = {
    "required": "required",
    "none": "none",
    "named": {"type": "function", "function": {"name": "get_time"}},
}


def _last_body(fake: FakeProviderServer, provider: str) -> dict[str, Any]:
    body = fake.requests_for(provider)[-1].body
    assert isinstance(body, dict)
    return body


async def _collect_stream(stream: Any) -> tuple[str, list[dict[str, Any]], str | None]:
    """Text, tool calls reassembled from their deltas as an OpenAI client does, finish."""
    text, calls, finish = "", [], None
    async for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        text += choice.delta.content or ""
        for piece in choice.delta.tool_calls or ():
            while len(calls) <= piece.index:
                calls.append({"id": None, "name": "", "arguments": ""})
            call = calls[piece.index]
            call["id"] = piece.id or call["id"]
            if piece.function is not None:
                call["name"] += piece.function.name or ""
                call["arguments"] += piece.function.arguments or ""
        finish = choice.finish_reason or finish
    return text, calls, finish


@pytest.mark.parametrize("provider", sorted(NATIVE))
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_agent_loop(
    llm_server: ThreadedServer,
    api_key: str,
    fake_provider: FakeProviderServer,
    provider: str,
    streamed: bool,
) -> None:
    fake_provider.script(
        ToolCalls([("get_weather", '{"city": "Paris"}')]), Reply("It is sunny in Paris.")
    )
    client = sdk(llm_server, api_key)
    ask = {"model": MODELS[provider], "tools": [WEATHER_TOOL], "tool_choice": "auto"}
    if streamed:
        stream = await client.chat.completions.create(messages=[QUESTION], stream=True, **ask)
        text, calls, finish = await _collect_stream(stream)
        assert (text, finish) == ("", "tool_calls")
        assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
            ("get_weather", {"city": "Paris"})
        ]
        call_id = calls[0]["id"]
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": calls[0]["name"], "arguments": calls[0]["arguments"]},
                }
            ],
        }
    else:
        first = await client.chat.completions.create(messages=[QUESTION], **ask)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        assert choice.message.tool_calls is not None
        (call,) = choice.message.tool_calls
        assert call.type == "function"
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "get_weather",
            {"city": "Paris"},
        )
        call_id = call.id
        # As the SDK hands it back: every field, unset ones as null (annotations, audio...).
        assistant = choice.message.model_dump()
    assert isinstance(call_id, str)
    assert call_id
    # The client runs the tool and sends its result back; the model answers.
    answer = await client.chat.completions.create(
        messages=[
            QUESTION,
            assistant,
            {"role": "tool", "tool_call_id": call_id, "content": RESULT},
        ],
        **ask,
    )
    assert answer.choices[0].message.content == "It is sunny in Paris."
    assert answer.choices[0].finish_reason == "stop"
    NATIVE[provider](_last_body(fake_provider, provider), call_id)


@pytest.mark.parametrize("provider", sorted(NATIVE))
async def test_parallel_tool_calls(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer, provider: str
) -> None:
    calls = [("get_weather", '{"city": "Paris"}'), ("get_time", "{}")]
    fake_provider.script(ToolCalls(calls), ToolCalls(calls))
    client = sdk(llm_server, api_key)
    ask = {"model": MODELS[provider], "tools": [WEATHER_TOOL, TIME_TOOL], "messages": [QUESTION]}
    whole = await client.chat.completions.create(**ask)
    made = whole.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in made] == [
        (name, json.loads(arguments)) for name, arguments in calls
    ]
    assert len({c.id for c in made}) == 2
    _, streamed, finish = await _collect_stream(
        await client.chat.completions.create(stream=True, **ask)
    )
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed] == [
        (name, json.loads(arguments)) for name, arguments in calls
    ]


@pytest.mark.parametrize(
    ("provider", "choice"),
    # A provider without a form of some choice (Cohere names no function) refuses it instead,
    # tested with that provider.
    [(provider, choice) for provider, native in sorted(NATIVE_CHOICE.items()) for choice in native],
)
async def test_tool_choice_is_carried(
    llm_server: ThreadedServer,
    api_key: str,
    fake_provider: FakeProviderServer,
    provider: str,
    choice: str,
) -> None:
    fake_provider.script(Reply("ok"))
    await sdk(llm_server, api_key).chat.completions.create(
        model=MODELS[provider],
        messages=[QUESTION],
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice=CHOICES[choice],
    )
    path, expected = NATIVE_CHOICE[provider][choice]
    sent: Any = _last_body(fake_provider, provider)
    for key in path.split("."):
        sent = sent.get(key) if isinstance(sent, dict) else None
    assert sent == expected


async def test_a_tool_result_must_answer_an_earlier_call(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        await sdk(llm_server, api_key).chat.completions.create(
            model=MODELS["openai"],
            messages=[QUESTION, {"role": "tool", "tool_call_id": "call_unknown", "content": "x"}],
            tools=[WEATHER_TOOL],
        )
    assert isinstance(error.value.body, dict)
    assert error.value.body["param"] == "messages[1].tool_call_id"
    assert fake_provider.requests_for("openai") == []


async def test_tool_choice_must_name_an_offered_tool(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        await sdk(llm_server, api_key).chat.completions.create(
            model=MODELS["openai"],
            messages=[QUESTION],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )
    assert isinstance(error.value.body, dict)
    assert error.value.body["param"] == "tool_choice"
