"""Every reply ends truthfully, through the real app over HTTP against each provider's wire format.

A stream's end marker (OpenAI `data: [DONE]`, Anthropic `message_stop`, Cohere `message-end`,
a Gemini candidate's `finishReason`) ends a reply as complete, with or without a finish reason;
only a stream cut before it is an error. A provider's refusal or block (OpenAI
`content_filter`, Anthropic `refusal`, Gemini SAFETY/RECITATION/... and
`promptFeedback.blockReason`, Cohere `ERROR_TOXIC`) is never retried nor sent to the fallback
model; it is stored as an error with finish_reason `content_filter`, answers 422 on the seed
endpoints and `finish_reason: "content_filter"` on `/v1`, which only ever speaks OpenAI's
finish reasons.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from omnichat.container import Container
from tests.conftest import TestUser, UserFactory
from tests.fakes import (
    Behaviour,
    CutAfter,
    FakeProviderServer,
    PromptBlocked,
    RecordedRequest,
    Reply,
)
from tests.fakes._common import text_of
from tests.sse import SSETranscript, stream_sse
from tests.test_generation import _messages, _session

# Models the test app serves (see LLM_TEST_SETTINGS: the fallback is anthropic:claude-haiku-5-5).
MODELS = {
    "openai": "openai:gpt-5.4-mini",
    "anthropic": "anthropic:claude-sonnet-5-5",
    "gemini": "gemini:gemini-3.8-flash",
    "cohere": "cohere:command-a-03-2025",
}
OPENAI_FINISH_REASONS = {"stop", "length", "content_filter", "tool_calls"}
TOKENS = ["The", " sea", " is", " calm", " today."]
FULL = "".join(TOKENS)

# Each provider's refusal, as it sends it, and the reason users are given.
REFUSALS = [
    pytest.param(
        "openai", Reply(tokens=[], finish="content_filter"), "content filter", id="openai"
    ),
    pytest.param("anthropic", Reply(tokens=[], finish="refusal"), "safety (cyber)", id="anthropic"),
    pytest.param("gemini", Reply(tokens=[], finish="SAFETY"), "safety", id="gemini-SAFETY"),
    pytest.param(
        "gemini", Reply(tokens=[], finish="RECITATION"), "recitation", id="gemini-RECITATION"
    ),
    pytest.param(
        "gemini", PromptBlocked("SAFETY"), "prompt blocked: safety", id="gemini-prompt-blocked"
    ),
    pytest.param("cohere", Reply(tokens=[], finish="ERROR_TOXIC"), "toxic content", id="cohere"),
]


# provider -> {the finish_reason /v1 must report: the provider's native values for it}
FINISH_TABLE: dict[str, dict[str, tuple[str | None, ...]]] = {
    "openai": {
        "stop": ("stop", None, "", "eos"),  # "eos": an OpenAI-compatible server's own value
        "length": ("length",),
        "tool_calls": ("tool_calls", "function_call"),
        "content_filter": ("content_filter",),
    },
    "anthropic": {
        "stop": ("end_turn", "stop_sequence", "pause_turn", None),
        "length": ("max_tokens", "model_context_window_exceeded"),
        "tool_calls": ("tool_use",),
        "content_filter": ("refusal",),
    },
    "gemini": {
        "stop": ("STOP", "OTHER", "MALFORMED_FUNCTION_CALL", "FINISH_REASON_UNSPECIFIED"),
        "length": ("MAX_TOKENS",),
        "content_filter": (
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
        ),
    },
    "cohere": {
        "stop": ("COMPLETE", "STOP_SEQUENCE", None),
        "length": ("MAX_TOKENS",),
        "tool_calls": ("TOOL_CALL",),
        "content_filter": ("ERROR_TOXIC",),
    },
}


def _finish_cases() -> list[Any]:
    """(provider, scripted behaviour, expected /v1 finish_reason) for every value of the table."""
    cases = [
        pytest.param(
            provider, Reply(tokens=TOKENS, finish=value), expected, id=f"{provider}-{value!r}"
        )
        for provider, row in FINISH_TABLE.items()
        for expected, values in row.items()
        for value in values
    ]
    blocked = PromptBlocked("PROHIBITED_CONTENT")
    cases.append(pytest.param("gemini", blocked, "content_filter", id="gemini-prompt-blocked"))
    return cases


@pytest.fixture
async def user(make_llm_user: UserFactory) -> TestUser:
    return await make_llm_user("endings")


async def _chat_stream(
    client: httpx.AsyncClient, user: TestUser, session_id: str, prompt: str, provider: str
) -> SSETranscript:
    return await stream_sse(
        client,
        "POST",
        "/chat/stream",
        json={"session_id": session_id, "prompt": prompt, "model": MODELS[provider]},
        headers=user.headers,
    )


def _sent_turns(request: RecordedRequest) -> list[tuple[str, str]]:
    """The conversation a generation request carried, as (role, text), system prompt left out."""
    body = request.body
    if request.provider == "gemini":
        return [
            ("assistant" if c.get("role") == "model" else "user", text_of(c.get("parts")))
            for c in body["contents"]
        ]
    return [
        (m["role"], text_of(m["content"]))
        for m in body["messages"]
        if m["role"] in ("user", "assistant")
    ]


async def _next_turn_context(
    client: httpx.AsyncClient,
    fake: FakeProviderServer,
    user: TestUser,
    session_id: str,
    provider: str,
) -> list[tuple[str, str]]:
    """Asks a follow-up question in the session; what the provider was sent for it."""
    fake.script(Reply("fine"))
    transcript = await _chat_stream(client, user, session_id, "next question", provider)
    assert transcript.final["status"] == "complete"
    return _sent_turns(fake.requests_for(provider)[-1])


async def _v1(
    client: httpx.AsyncClient, user: TestUser, provider: str, *, stream: bool
) -> tuple[str, str]:
    """POST /v1/chat/completions: (content, finish_reason), after checking that it is a 200 with
    nothing but OpenAI's finish reasons and, streamed, no error event."""
    body = {
        "model": MODELS[provider],
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if not stream:
        r = await client.post("/v1/chat/completions", json=body, headers=user.headers)
        assert r.status_code == 200, r.text
        [choice] = r.json()["choices"]
        return choice["message"]["content"], choice["finish_reason"]
    chunks: list[dict[str, Any]] = []
    async with client.stream(
        "POST", "/v1/chat/completions", json=body, headers=user.headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]", lines
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    assert not [c for c in chunks if "error" in c], chunks
    finishes = [choice["finish_reason"] for c in chunks for choice in c["choices"]]
    assert finishes[-1] is not None, finishes
    assert not any(finishes[:-1]), finishes
    text = "".join(choice["delta"].get("content") or "" for c in chunks for choice in c["choices"])
    return text, finishes[-1]


# ------------------------------------------------------------------ end markers


@pytest.mark.parametrize(
    ("provider", "finish"),
    [("openai", None), ("openai", ""), ("anthropic", None), ("cohere", None)],
)
async def test_end_marker_without_finish_reason_completes_the_reply(
    llm_client: httpx.AsyncClient,
    fake_provider: FakeProviderServer,
    user: TestUser,
    container: Container,
    provider: str,
    finish: str | None,
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(Reply(tokens=TOKENS, finish=finish))
    transcript = await _chat_stream(llm_client, user, session_id, "how is the sea?", provider)
    assert transcript.text == FULL
    final = transcript.final
    assert (final["status"], final["finish_reason"]) == ("complete", "stop")
    assert "error" not in final
    assert "error_code" not in final
    stored = await container.generation.stored_message(user.id, final["message_id"])
    assert stored is not None
    assert (stored.status, stored.finish_reason, stored.error) == ("complete", "stop", None)
    # A complete reply is part of the next turn's context.
    sent = await _next_turn_context(llm_client, fake_provider, user, session_id, provider)
    assert sent == [("user", "how is the sea?"), ("assistant", FULL), ("user", "next question")]

    fake_provider.script(Reply(tokens=TOKENS, finish=finish))
    assert await _v1(llm_client, user, provider, stream=True) == (FULL, "stop")
    fake_provider.script(Reply(tokens=TOKENS, finish=finish))
    r = await llm_client.post(
        "/inference/query",
        json={"query": "again", "model": MODELS[provider], "session_id": session_id},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["response"] == FULL


async def test_gemini_body_ended_without_finish_reason_is_still_cut(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    """Gemini's only end marker is a candidate's finishReason: a body that ends cleanly without
    one was cut short."""
    session_id = await _session(llm_client, user)
    fake_provider.script(Reply(tokens=TOKENS, finish=None))
    transcript = await _chat_stream(llm_client, user, session_id, "how is the sea?", "gemini")
    assert transcript.text == FULL
    assert transcript.final["status"] == "error"
    assert "error_code" not in transcript.final
    assert fake_provider.generation_count == 1  # tokens had reached the client: no retry
    sent = await _next_turn_context(llm_client, fake_provider, user, session_id, "gemini")
    assert sent == [("user", "next question")]


@pytest.mark.parametrize("provider", list(MODELS))
async def test_cut_stream_is_still_an_error(
    llm_client: httpx.AsyncClient,
    fake_provider: FakeProviderServer,
    user: TestUser,
    container: Container,
    provider: str,
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(CutAfter(3, tokens=TOKENS))
    transcript = await _chat_stream(llm_client, user, session_id, "how is the sea?", provider)
    assert transcript.text == "".join(TOKENS[:3])
    final = transcript.final
    assert (final["status"], final["finish_reason"]) == ("error", "error")
    assert final["error"].startswith(f"The {provider} provider failed")
    assert "error_code" not in final
    stored = await container.generation.stored_message(user.id, final["message_id"])
    assert stored is not None
    assert (stored.status, stored.content) == ("error", "".join(TOKENS[:3]))


@pytest.mark.parametrize("finish", ["ERROR", "TIMEOUT"])
async def test_cohere_error_finish_is_a_failure_not_a_complete_reply(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser, finish: str
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(Reply(tokens=TOKENS, finish=finish))
    transcript = await _chat_stream(llm_client, user, session_id, "how is the sea?", "cohere")
    assert transcript.text == FULL
    assert (transcript.final["status"], transcript.final["finish_reason"]) == ("error", "error")
    assert "cohere provider failed" in transcript.final["error"]
    sent = await _next_turn_context(llm_client, fake_provider, user, session_id, "cohere")
    assert sent == [("user", "next question")]


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(("provider", "behaviour", "reason"), REFUSALS)
async def test_refusal_on_chat_stream_is_stored_as_declined_once(
    llm_client: httpx.AsyncClient,
    fake_provider: FakeProviderServer,
    user: TestUser,
    container: Container,
    provider: str,
    behaviour: Behaviour,
    reason: str,
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(behaviour)
    transcript = await _chat_stream(llm_client, user, session_id, "something risky", provider)
    final = transcript.final
    declined = f"The provider declined: {reason}"
    assert final["status"] == "error"
    assert final["finish_reason"] == "content_filter"
    assert final["error"] == declined
    assert final["error_code"] == "refused"
    assert final["model"] == MODELS[provider]
    # Neither retried nor handed to the fallback model.
    assert fake_provider.generation_count == 1
    assert [r.provider for r in fake_provider.requests] == [provider]

    r = await llm_client.get(f"/sessions/{session_id}", headers=user.headers)
    assert r.status_code == 200
    assert [(m["role"], m["status"]) for m in r.json()["messages"]] == [
        ("user", "complete"),
        ("assistant", "error"),
    ]
    stored = await container.generation.stored_message(user.id, final["message_id"])
    assert stored is not None
    assert (stored.status, stored.finish_reason, stored.error) == (
        "error",
        "content_filter",
        declined,
    )
    # Re-attaching to the stored reply tells the same.
    again = await stream_sse(
        llm_client, "GET", f"/chat/stream/{final['message_id']}", headers=user.headers
    )
    assert again.final["error_code"] == "refused"
    assert again.final["error"] == declined
    # The declined exchange stays out of the next turn's context.
    sent = await _next_turn_context(llm_client, fake_provider, user, session_id, provider)
    assert sent == [("user", "next question")]


@pytest.mark.parametrize(
    ("provider", "finish"),
    [("anthropic", "refusal"), ("gemini", "SAFETY"), ("openai", "content_filter")],
)
async def test_refusal_after_some_text_keeps_the_text_as_an_error(
    llm_client: httpx.AsyncClient,
    fake_provider: FakeProviderServer,
    user: TestUser,
    provider: str,
    finish: str,
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(Reply(tokens=TOKENS, finish=finish))
    transcript = await _chat_stream(llm_client, user, session_id, "something risky", provider)
    assert transcript.text == FULL
    assert transcript.final["finish_reason"] == "content_filter"
    assert transcript.final["error_code"] == "refused"
    messages = await _messages(llm_client, user, session_id)
    assert (messages[-1]["content"], messages[-1]["status"]) == (FULL, "error")
    assert fake_provider.generation_count == 1


@pytest.mark.parametrize("with_session", [False, True], ids=["no-session", "session"])
@pytest.mark.parametrize(("provider", "behaviour", "reason"), REFUSALS)
async def test_refusal_on_inference_query_is_a_422(
    llm_client: httpx.AsyncClient,
    fake_provider: FakeProviderServer,
    user: TestUser,
    provider: str,
    behaviour: Behaviour,
    reason: str,
    with_session: bool,
) -> None:
    body: dict[str, Any] = {"query": "something risky", "model": MODELS[provider]}
    if with_session:
        body["session_id"] = await _session(llm_client, user)
    fake_provider.script(behaviour)
    r = await llm_client.post("/inference/query", json=body, headers=user.headers)
    assert r.status_code == 422, r.text
    assert r.json() == {"detail": f"The provider declined: {reason}"}
    assert fake_provider.generation_count == 1
    if with_session:
        messages = await _messages(llm_client, user, body["session_id"])
        assert [(m["role"], m["status"]) for m in messages] == [
            ("user", "complete"),
            ("assistant", "error"),
        ]


@pytest.mark.parametrize(("provider", "behaviour", "reason"), REFUSALS)
async def test_refusal_on_cohere_generate_is_a_422(
    llm_client: httpx.AsyncClient,
    fake_provider: FakeProviderServer,
    user: TestUser,
    provider: str,
    behaviour: Behaviour,
    reason: str,
) -> None:
    fake_provider.script(behaviour)
    r = await llm_client.post(
        "/api/cohere/generate",
        json={"prompt": "something risky", "model": MODELS[provider]},
        headers=user.headers,
    )
    assert r.status_code == 422, r.text
    assert r.json() == {"detail": f"The provider declined: {reason}"}
    assert fake_provider.generation_count == 1


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("provider", "behaviour", "reason"), REFUSALS)
async def test_refusal_on_v1_is_content_filter(
    llm_client: httpx.AsyncClient,
    fake_provider: FakeProviderServer,
    user: TestUser,
    provider: str,
    behaviour: Behaviour,
    reason: str,
    stream: bool,
) -> None:
    fake_provider.script(behaviour)
    assert await _v1(llm_client, user, provider, stream=stream) == ("", "content_filter")
    assert fake_provider.generation_count == 1


# ------------------------------------------------------------------ /v1 speaks only OpenAI's


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("provider", "behaviour", "expected"), _finish_cases())
async def test_v1_finish_reason_is_always_openais(
    llm_client: httpx.AsyncClient,
    fake_provider: FakeProviderServer,
    user: TestUser,
    provider: str,
    behaviour: Behaviour,
    expected: str,
    stream: bool,
) -> None:
    fake_provider.script(behaviour)
    text, finish_reason = await _v1(llm_client, user, provider, stream=stream)
    assert finish_reason in OPENAI_FINISH_REASONS
    assert finish_reason == expected
    assert text == ("" if isinstance(behaviour, PromptBlocked) else FULL)
    assert fake_provider.generation_count == 1
