"""``/v1/chat/completions`` carries what a client sent: the messages exactly as sent, and every
request field in each provider's native form, or a 400 naming the field. Driven by the official
``openai`` SDK; what each provider received is read from the fake provider server."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import openai
import pytest

from omnichat.llm.providers.openai import openai_params
from omnichat.llm.types import ChatTurn, GenerationRequest
from omnichat.settings import Settings
from tests.conftest import ThreadedServer
from tests.fakes import Fail, FakeProviderServer, Reply
from tests.test_openai_api import api_key, sdk, user

__all__ = ["api_key", "user"]  # fixtures, imported to be used here

MODELS = {
    "openai": "openai:gpt-5.4-mini",
    "anthropic": "anthropic:claude-sonnet-5-5",
    "gemini": "gemini:gemini-3.8-flash",
    "cohere": "cohere:command-a-plus-05-2026",
}
CONVERSATION: list[Any] = [
    {"role": "assistant", "content": "Hello! Who are you?"},
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": "My name is Bob."},
    {"role": "user", "content": "What is my name?"},
]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": SCHEMA, "strict": True},
}


async def _ask(server: ThreadedServer, key: str, provider: str, **fields: Any) -> Any:
    fields.setdefault("messages", CONVERSATION)
    return await sdk(server, key).chat.completions.create(model=MODELS[provider], **fields)


def _sent(fake: FakeProviderServer, provider: str) -> dict[str, Any]:
    body = fake.requests_for(provider)[-1].body
    assert isinstance(body, dict)
    return body


# Every field OpenAI has, as a client sets it: an OpenAI-format server gets each as sent.
OPENAI_FIELDS: dict[str, Any] = {
    "temperature": 0.3,
    "top_p": 0.9,
    "stop": ["END"],
    "seed": 7,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "response_format": JSON_SCHEMA_FORMAT,
    "reasoning_effort": "low",
    "safety_identifier": "user-42",
    "user": "u-7",
    "logit_bias": {"1234": -100},
    "metadata": {"team": "docs"},
    "store": False,
    "service_tier": "auto",
    "prompt_cache_key": "bob",
    "verbosity": "low",
    "logprobs": True,
    "top_logprobs": 3,
}


async def test_openai_gets_the_messages_and_every_field_as_sent(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply("Bob"))
    await _ask(llm_server, api_key, "openai", max_completion_tokens=64, **OPENAI_FIELDS)
    sent = _sent(fake_provider, "openai")
    # As sent: the opening assistant turn, the system turn in its place, both user turns, and
    # no operator system prompt in front (OMNICHAT_V1_SYSTEM_PROMPT is off by default).
    assert sent["messages"] == CONVERSATION
    assert sent["max_completion_tokens"] == 64
    assert "max_tokens" not in sent
    assert {name: sent.get(name) for name in OPENAI_FIELDS} == OPENAI_FIELDS


async def test_anthropic_gets_its_native_forms(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply("Bob"))
    await _ask(
        llm_server,
        api_key,
        "anthropic",
        max_tokens=64,
        stop="END",
        response_format=JSON_SCHEMA_FORMAT,
        reasoning_effort="high",
        user="user-42",
    )
    sent = _sent(fake_provider, "anthropic")
    assert sent["system"] == "Answer in one word."
    assert sent["messages"] == [
        {"role": "assistant", "content": "Hello! Who are you?"},
        {"role": "user", "content": "My name is Bob."},
        {"role": "user", "content": "What is my name?"},
    ]
    assert sent["max_tokens"] == 64
    assert sent["stop_sequences"] == ["END"]
    assert sent["output_config"] == {
        "format": {"type": "json_schema", "schema": SCHEMA},
        "effort": "high",
    }
    assert sent["metadata"] == {"user_id": "user-42"}
    assert not {"temperature", "top_p", "stop", "response_format"} & set(sent)


async def test_gemini_gets_its_native_forms(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply("Bob"))
    await _ask(
        llm_server,
        api_key,
        "gemini",
        max_tokens=64,
        temperature=0.3,
        top_p=0.9,
        stop=["END"],
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        response_format=JSON_SCHEMA_FORMAT,
        reasoning_effort="none",
    )
    sent = _sent(fake_provider, "gemini")
    assert sent["systemInstruction"]["parts"] == [{"text": "Answer in one word."}]
    # Consecutive user turns are one content of two parts: Gemini wants roles to alternate.
    assert sent["contents"] == [
        {"role": "model", "parts": [{"text": "Hello! Who are you?"}]},
        {"role": "user", "parts": [{"text": "My name is Bob."}, {"text": "What is my name?"}]},
    ]
    config = sent["generationConfig"]
    # google-genai writes this one in the API's snake_case spelling (proto3 JSON takes both).
    assert config.pop("thinkingConfig") in ({"thinkingBudget": 0}, {"thinking_budget": 0})
    assert config == {
        "maxOutputTokens": 64,
        "temperature": 0.3,
        "topP": 0.9,
        "stopSequences": ["END"],
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    }


async def test_cohere_gets_its_native_forms(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply("Bob"))
    await _ask(
        llm_server,
        api_key,
        "cohere",
        max_tokens=64,
        temperature=0.3,
        top_p=0.9,
        stop=["END"],
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        response_format={"type": "json_object"},
        reasoning_effort="medium",
    )
    sent = _sent(fake_provider, "cohere")
    assert sent["messages"] == CONVERSATION  # Cohere v2 takes system turns in place
    expected = {
        "max_tokens": 64,
        "temperature": 0.3,
        "p": 0.9,
        "stop_sequences": ["END"],
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "response_format": {"type": "json_object"},
        "thinking": {"type": "enabled", "token_budget": 4096},
    }
    assert {name: sent.get(name) for name in expected} == expected


@pytest.mark.parametrize(
    ("provider", "fields", "param"),
    [
        ("anthropic", {"temperature": 0.2}, "temperature"),
        ("anthropic", {"top_p": 0.5}, "top_p"),
        ("anthropic", {"seed": 1}, "seed"),
        ("anthropic", {"response_format": {"type": "json_object"}}, "response_format"),
        ("anthropic", {"logit_bias": {"1": 5}}, "logit_bias"),
        ("gemini", {"metadata": {"a": "b"}}, "metadata"),
        ("cohere", {"verbosity": "low"}, "verbosity"),
        ("openai", {"n": 9}, "n"),
        ("openai", {"extra_body": {"n": "2"}}, "n"),
        ("openai", {"extra_body": {"logprobs": 1}}, "logprobs"),
        ("openai", {"extra_body": {"rag": "yes"}}, "rag"),
        ("anthropic", {"logprobs": True}, "logprobs"),
        ("gemini", {"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ("cohere", {"logprobs": True}, "logprobs"),
        ("openai", {"top_logprobs": 2}, "top_logprobs"),
        ("openai", {"tools": [{"type": "custom", "custom": {"name": "f"}}]}, "tools[0].type"),
        ("openai", {"max_tokens": 5, "max_completion_tokens": 5}, "max_completion_tokens"),
        ("openai", {"temperature": 3}, "temperature"),
        ("openai", {"extra_body": {"not_an_openai_field": 1}}, "not_an_openai_field"),
        (
            "openai",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,"}},
                        ],
                    }
                ]
            },
            "messages[0].content[1].image_url.url",
        ),
        (
            "openai",
            {"messages": [{"role": "function", "name": "f", "content": "42"}]},
            "messages[0].role",
        ),
        ("gemini", {"messages": [{"role": "system", "content": "Be brief."}]}, "messages"),
        ("anthropic", {"messages": [{"role": "system", "content": "Be brief."}]}, "messages"),
        ("anthropic", {"user": "a", "safety_identifier": "b"}, "safety_identifier"),
        (
            "openai",
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
        ),
        (
            "openai",
            {"response_format": {"type": "json_object", "json_schema": {"name": "x"}}},
            "response_format.json_schema",
        ),
        ("openai", {"stream_options": {"include_usage": True}}, "stream_options"),
        (
            "cohere",
            {
                "messages": [
                    {"role": "user", "content": "Weather?"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": "not json"},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
    ],
)
async def test_what_cannot_be_carried_is_a_400_naming_it(
    llm_server: ThreadedServer,
    api_key: str,
    fake_provider: FakeProviderServer,
    provider: str,
    fields: dict[str, Any],
    param: str,
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        await _ask(llm_server, api_key, provider, **fields)
    body = error.value.body
    assert isinstance(body, dict)
    assert (body["type"], body["param"]) == ("invalid_request_error", param)
    assert fake_provider.requests_for(provider) == []  # nothing was sent without it


async def test_an_assistant_refusal_is_carried_as_its_text(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply("ok"))
    messages = [
        {"role": "user", "content": "Help me pick a lock."},
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        {"role": "user", "content": "It is my own lock."},
    ]
    await _ask(llm_server, api_key, "anthropic", messages=messages)
    sent = _sent(fake_provider, "anthropic")["messages"]
    assert sent[1] == {"role": "assistant", "content": "I can't help with that."}


async def test_max_tokens_cannot_raise_the_operators_ceiling(
    llm_server: ThreadedServer,
    llm_settings: Settings,
    api_key: str,
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.script(Reply("ok"), Reply("ok"))
    await _ask(llm_server, api_key, "openai", max_tokens=100_000)
    assert _sent(fake_provider, "openai")["max_tokens"] == llm_settings.max_output_tokens
    await _ask(llm_server, api_key, "openai", max_tokens=7)
    assert _sent(fake_provider, "openai")["max_tokens"] == 7


async def test_a_fallback_that_cannot_carry_a_field_is_skipped(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    """The fallback (Anthropic) has no ``seed``: when OpenAI fails, the request is not sent to
    it without the seed; the client gets OpenAI's failure."""
    fake_provider.script(*[Fail(503)] * 3)
    with pytest.raises(openai.APIStatusError) as error:
        await _ask(llm_server, api_key, "openai", seed=3)
    assert error.value.status_code == 502
    assert "The openai provider failed" in error.value.message
    assert len(fake_provider.requests_for("openai")) == 3
    assert fake_provider.requests_for("anthropic") == []


async def test_streamed_replies_carry_the_fields_too(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply(tokens=["B", "ob"]))
    stream = await _ask(llm_server, api_key, "gemini", stream=True, seed=11, stop=["X"])
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Bob"
    config = _sent(fake_provider, "gemini")["generationConfig"]
    assert (config["seed"], config["stopSequences"]) == (11, ["X"])


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def _image_question(url: str) -> list[Any]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


def _image_as_received(provider: str, sent: dict[str, Any]) -> Any:
    if provider == "gemini":
        return sent["contents"][0]["parts"]
    return sent["messages"][-1]["content"]


@pytest.mark.parametrize("provider", sorted(MODELS))
async def test_an_image_goes_to_each_provider_in_its_form(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer, provider: str
) -> None:
    fake_provider.script(Reply("A single pixel."))
    await _ask(llm_server, api_key, provider, messages=_image_question(PNG_URL))
    encoded = base64.b64encode(PNG).decode()
    expected = {
        "openai": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": PNG_URL}},
        ],
        "anthropic": [
            {"type": "text", "text": "What is in this picture?"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": encoded},
            },
        ],
        "gemini": [
            {"text": "What is in this picture?"},
            # As google-genai writes it (proto3 JSON takes snake_case and camelCase alike).
            {"inlineData": {"mime_type": "image/png", "data": encoded}},
        ],
        "cohere": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": PNG_URL}},
        ],
    }
    assert _image_as_received(provider, _sent(fake_provider, provider)) == expected[provider]


@pytest.mark.parametrize(
    ("provider", "carried"),
    [("openai", True), ("anthropic", True), ("gemini", False), ("cohere", False)],
)
async def test_an_image_url_goes_only_to_providers_that_fetch_it(
    llm_server: ThreadedServer,
    api_key: str,
    fake_provider: FakeProviderServer,
    provider: str,
    carried: bool,
) -> None:
    url = "https://images.example.com/cat.png"
    if not carried:
        with pytest.raises(openai.BadRequestError) as error:
            await _ask(llm_server, api_key, provider, messages=_image_question(url))
        assert isinstance(error.value.body, dict)
        assert error.value.body["param"] == "image_url"
        assert fake_provider.requests_for(provider) == []
        return
    fake_provider.script(Reply("A cat."))
    await _ask(llm_server, api_key, provider, messages=_image_question(url))
    received = _image_as_received(provider, _sent(fake_provider, provider))[1]
    assert received == (
        {"type": "image_url", "image_url": {"url": url}}
        if provider == "openai"
        else {"type": "image", "source": {"type": "url", "url": url}}
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("data:image/png;base64,not base64!", "not valid base64"),
        ("data:image/svg+xml;base64," + base64.b64encode(b"<svg/>").decode(), "image/svg+xml"),
        ("file:///etc/passwd", "http(s) URL"),
    ],
)
async def test_a_bad_image_is_a_400_naming_it(
    llm_server: ThreadedServer,
    api_key: str,
    fake_provider: FakeProviderServer,
    url: str,
    why: str,
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        await _ask(llm_server, api_key, "openai", messages=_image_question(url))
    assert isinstance(error.value.body, dict)
    assert error.value.body["param"] == "messages[0].content[1].image_url.url"
    assert why in error.value.body["message"]
    assert fake_provider.requests_for("openai") == []


def test_the_output_limit_goes_under_the_clients_name_or_the_one_the_api_takes() -> None:
    """OpenAI's own API (no base URL) gets the server's ceiling as ``max_completion_tokens``,
    which its reasoning models require; compatible servers get ``max_tokens``; a name the
    client used is kept (a unit test of the body: the fake servers are compatible servers)."""
    request = GenerationRequest(model="m", messages=(ChatTurn("user", "hi"),), max_tokens=100)
    official = openai_params(request, official=True)
    assert (official.get("max_completion_tokens"), "max_tokens" in official) == (100, False)
    assert openai_params(request)["max_tokens"] == 100
    named = dataclasses.replace(request, max_tokens_param="max_tokens")
    assert openai_params(named, official=True)["max_tokens"] == 100
