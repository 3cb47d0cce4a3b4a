"""The fake providers, driven by the official async SDKs: the SDKs parse what the fakes send.

These tests also pin down, for each SDK, which exception a rate limit, a server error, a
connection cut mid-stream and a timeout surface as; the provider adapters rely on that.
"""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import cohere
import httpx
import httpx2
import openai
import pytest
from anthropic.types import MessageParam, RawMessageStreamEvent
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from tests.fakes import CutAfter, Fail, FakeProviderServer, Hang, HangAfter, Reply, fake_embedding

pytest_plugins = ["tests.fakes.fixtures"]

USER = "tell me about the sea today"
EXPECTED = "Echo: tell me about the sea today"
EXPECTED_TOKENS = ["Echo:", " tell", " me", " about", " the", " sea", " today"]
SYSTEM = "You are terse."
HISTORY_WORDS = len(SYSTEM.split()) + len(["hi", "there", "hello"]) + len(USER.split())
SHORT = 0.2  # client timeout for the hang tests, seconds
REPO = Path(__file__).resolve().parents[1]


def openai_messages() -> list[ChatCompletionMessageParam]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": USER},
    ]


def anthropic_messages() -> list[MessageParam]:
    return [
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": USER},
    ]


def gemini_contents() -> list[genai_types.Content]:
    return [
        genai_types.Content(role="user", parts=[genai_types.Part(text="hi there")]),
        genai_types.Content(role="model", parts=[genai_types.Part(text="hello")]),
        genai_types.Content(role="user", parts=[genai_types.Part(text=USER)]),
    ]


# ------------------------------------------------------------------ clients


def make_openai(server: FakeProviderServer, timeout: float = 5.0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.base_url_for("openai"),  # http://127.0.0.1:PORT/v1
        api_key="sk-test-openai",
        max_retries=0,
        timeout=timeout,
    )


def make_anthropic(server: FakeProviderServer, timeout: float = 5.0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=server.base_url,  # the SDK adds /v1/messages
        api_key="sk-ant-test",
        max_retries=0,
        timeout=timeout,
    )


def make_gemini(
    server: FakeProviderServer, timeout: float = 5.0, api_version: str | None = None
) -> genai.Client:
    return genai.Client(
        api_key="gemini-test-key",
        http_options=genai_types.HttpOptions(
            base_url=server.base_url,  # the SDK adds /{api_version}/models/{model}:...
            api_version=api_version,  # None: the SDK's default, "v1" in google-genai 3.x
            timeout=int(timeout * 1000),  # milliseconds
            # httpx2, as OmniChat's adapter pins it (the SDK would pick aiohttp, installed here)
            async_client_args={"transport": httpx2.AsyncHTTPTransport()},
        ),
    )


def make_cohere(server: FakeProviderServer, timeout: float = 5.0) -> cohere.AsyncClientV2:
    return cohere.AsyncClientV2(
        api_key="co-test-key",
        base_url=server.base_url,  # the SDK adds /v2/chat
        max_retries=0,
        timeout=timeout,
    )


@pytest.fixture
async def openai_client(fake_provider: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with make_openai(fake_provider) as client:
        yield client


@pytest.fixture
async def anthropic_client(
    fake_provider: FakeProviderServer,
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with make_anthropic(fake_provider) as client:
        yield client


@pytest.fixture
async def gemini_client(fake_provider: FakeProviderServer) -> AsyncIterator[genai.Client]:
    client = make_gemini(fake_provider)
    yield client
    await client.aio.aclose()


@pytest.fixture
async def cohere_client(fake_provider: FakeProviderServer) -> AsyncIterator[cohere.AsyncClientV2]:
    async with make_cohere(fake_provider) as client:
        yield client


# ------------------------------------------------------------------ reading replies


async def openai_text(stream: openai.AsyncStream[ChatCompletionChunk], out: list[str]) -> None:
    async for chunk in stream:
        if chunk.choices:
            out.append(chunk.choices[0].delta.content or "")


async def anthropic_text(
    stream: anthropic.AsyncStream[RawMessageStreamEvent], out: list[str]
) -> None:
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            out.append(event.delta.text)


async def anthropic_helper_text(client: anthropic.AsyncAnthropic, out: list[str]) -> None:
    async with client.messages.stream(
        model="claude-test-1", max_tokens=256, messages=[{"role": "user", "content": USER}]
    ) as stream:
        async for text in stream.text_stream:
            out.append(text)


async def gemini_reply(
    client: genai.Client, stream: bool, contents: str = USER, out: list[str] | None = None
) -> str:
    """The reply's text, via generate_content or generate_content_stream (deltas into `out`)."""
    if not stream:
        r = await client.aio.models.generate_content(model="gemini-2.5-flash", contents=contents)
        return r.text or ""
    parts = out if out is not None else []
    async for chunk in await client.aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents=contents
    ):
        parts.append(chunk.text or "")
    return "".join(parts)


async def cohere_reply(
    client: cohere.AsyncClientV2, stream: bool, content: str = USER, out: list[str] | None = None
) -> str:
    """The reply's text, via chat or chat_stream (deltas into `out`)."""
    messages: list[cohere.ChatMessageV2] = [cohere.UserChatMessageV2(content=content)]
    if not stream:
        r = await client.chat(model="command-a-03-2025", messages=messages)
        return "".join(getattr(c, "text", "") for c in r.message.content or [])
    parts = out if out is not None else []
    async for e in client.chat_stream(model="command-a-03-2025", messages=messages):
        if e.type == "content-delta" and e.delta and e.delta.message and e.delta.message.content:
            parts.append(e.delta.message.content.text or "")
    return "".join(parts)


# ------------------------------------------------------------------ OpenAI


async def test_openai_non_stream(
    fake_provider: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    r = await openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=openai_messages(),
    )
    assert r.choices[0].message.content == EXPECTED
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "gpt-4o-mini"
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (HISTORY_WORDS, 7)
    assert r.usage.total_tokens == HISTORY_WORDS + 7
    [req] = fake_provider.requests
    assert (req.provider, req.path) == ("openai", "/v1/chat/completions")
    assert req.headers["authorization"] == "Bearer sk-test-openai"
    assert req.body["model"] == "gpt-4o-mini"
    assert req.body["messages"] == openai_messages()


async def test_openai_stream(
    fake_provider: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    stream = await openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=openai_messages(),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks[1:] if c.choices]
    assert [d for d in deltas if d] == EXPECTED_TOKENS
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7
    assert chunks[-1].usage.prompt_tokens == HISTORY_WORDS
    assert fake_provider.requests[0].body["stream"] is True


async def test_openai_stream_without_usage_and_length_finish(
    fake_provider: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    fake_provider.script(Reply(tokens=["a", " b"], finish="length"))
    stream = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "a b"
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_rate_limit(
    fake_provider: FakeProviderServer, openai_client: openai.AsyncOpenAI, stream: bool
) -> None:
    fake_provider.script(Fail(429, retry_after=2, message="slow down"))
    with pytest.raises(openai.RateLimitError) as info:
        await openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=stream
        )
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.body == {
        "message": "slow down",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    # The script is used up: the next request gets the default reply.
    r = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    )
    assert r.choices[0].message.content == "Echo: x"


async def test_openai_server_error(
    fake_provider: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    fake_provider.script(Fail(500), Fail(503))
    with pytest.raises(openai.InternalServerError) as info:
        await openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as info:
        await openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert info.value.status_code == 503


async def test_openai_cut_mid_stream(
    fake_provider: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    fake_provider.script(CutAfter(3))
    stream = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": USER}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError) as info:
        await openai_text(stream, received)
    assert type(info.value) is openai.APIConnectionError
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert "".join(received) == "Echo: tell me"


async def test_openai_cut_non_stream(
    fake_provider: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    fake_provider.script(CutAfter(3))
    with pytest.raises(openai.APIConnectionError) as info:
        await openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": USER}]
        )
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_hang_times_out(fake_provider: FakeProviderServer, stream: bool) -> None:
    fake_provider.script(Hang(2.0))
    started = time.monotonic()
    async with make_openai(fake_provider, timeout=SHORT) as client:
        with pytest.raises(openai.APITimeoutError) as info:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=stream
            )
    assert time.monotonic() - started < 1.0
    assert isinstance(info.value.__cause__, httpx2.ReadTimeout)


async def test_openai_idle_timeout_mid_stream(fake_provider: FakeProviderServer) -> None:
    fake_provider.script(HangAfter(2, 2.0))
    async with make_openai(fake_provider, timeout=SHORT) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": USER}], stream=True
        )
        received: list[str] = []
        with pytest.raises(openai.APITimeoutError):
            await openai_text(stream, received)
    assert "".join(received) == "Echo: tell"


async def test_openai_embeddings(openai_client: openai.AsyncOpenAI) -> None:
    r = await openai_client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta", "alpha"]
    )
    vectors = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2]
    assert len(vectors[0]) == 64
    assert vectors[0] == vectors[2] != vectors[1]
    assert math.isclose(sum(v * v for v in vectors[0]), 1.0, rel_tol=1e-5)
    assert vectors[0] == fake_embedding("alpha", 64)
    floats = await openai_client.embeddings.create(
        model="text-embedding-3-small", input="alpha", dimensions=8, encoding_format="float"
    )
    assert floats.data[0].embedding == fake_embedding("alpha", 8)
    assert r.usage.prompt_tokens == 3


async def test_openai_embeddings_base64_on_the_wire(fake_provider: FakeProviderServer) -> None:
    async with httpx.AsyncClient(base_url=fake_provider.base_url) as http:
        r = await http.post(
            "/v1/embeddings",
            json={"model": "m", "input": "alpha", "encoding_format": "base64", "dimensions": 4},
        )
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert list(struct.unpack("<4f", raw)) == fake_embedding("alpha", 4)


async def test_openai_models(openai_client: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in openai_client.models.list()]
    assert "gpt-4o-mini" in models


# ------------------------------------------------------------------ Anthropic


async def test_anthropic_non_stream(
    fake_provider: FakeProviderServer, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    m = await anthropic_client.messages.create(
        model="claude-test-1",
        max_tokens=256,
        system=SYSTEM,
        messages=anthropic_messages(),
    )
    assert m.content[0].type == "text"
    assert m.content[0].text == EXPECTED
    assert m.stop_reason == "end_turn"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (HISTORY_WORDS, 7)
    assert m.model == "claude-test-1"
    [req] = fake_provider.requests
    assert (req.provider, req.path) == ("anthropic", "/v1/messages")
    # anthropic 2.x sends the API key as a bearer token (1.x sent x-api-key).
    assert req.headers["authorization"] == "Bearer sk-ant-test"
    assert "anthropic-version" in req.headers
    assert req.body["system"] == SYSTEM
    assert req.body["messages"] == anthropic_messages()
    assert req.body["max_tokens"] == 256


async def test_anthropic_stream_raw_events(anthropic_client: anthropic.AsyncAnthropic) -> None:
    stream = await anthropic_client.messages.create(
        model="claude-test-1",
        max_tokens=256,
        messages=[{"role": "user", "content": USER}],
        stream=True,
    )
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]  # ping is dropped by the SDK
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    assert deltas == EXPECTED_TOKENS
    message_delta = events[-2]
    assert message_delta.type == "message_delta"
    assert message_delta.delta.stop_reason == "end_turn"
    assert message_delta.usage.output_tokens == 7
    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.input_tokens == len(USER.split())


async def test_anthropic_stream_helper(anthropic_client: anthropic.AsyncAnthropic) -> None:
    async with anthropic_client.messages.stream(
        model="claude-test-1", max_tokens=256, messages=[{"role": "user", "content": USER}]
    ) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert texts == EXPECTED_TOKENS
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 7


async def test_anthropic_max_tokens_truncates_default_reply(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    m = await anthropic_client.messages.create(
        model="claude-test-1", max_tokens=2, messages=[{"role": "user", "content": USER}]
    )
    assert m.content[0].type == "text"
    assert m.content[0].text == "Echo: tell"
    assert m.stop_reason == "max_tokens"


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_rate_limit(
    fake_provider: FakeProviderServer, anthropic_client: anthropic.AsyncAnthropic, stream: bool
) -> None:
    fake_provider.script(Fail(429, retry_after=2))
    with pytest.raises(anthropic.RateLimitError) as info:
        await anthropic_client.messages.create(
            model="claude-test-1",
            max_tokens=16,
            messages=[{"role": "user", "content": "x"}],
            stream=stream,
        )
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "2"
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "rate_limit_error"


async def test_anthropic_server_errors(
    fake_provider: FakeProviderServer, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    fake_provider.script(Fail(500), Fail(529))
    with pytest.raises(anthropic.InternalServerError) as info:
        await anthropic_client.messages.create(
            model="claude-test-1", max_tokens=16, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 500
    with pytest.raises(anthropic.OverloadedError) as over:
        await anthropic_client.messages.create(
            model="claude-test-1", max_tokens=16, messages=[{"role": "user", "content": "x"}]
        )
    assert isinstance(over.value.body, dict)
    assert over.value.body["error"]["type"] == "overloaded_error"


async def test_anthropic_cut_mid_stream(
    fake_provider: FakeProviderServer, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    fake_provider.script(CutAfter(3), CutAfter(3))
    stream = await anthropic_client.messages.create(
        model="claude-test-1",
        max_tokens=256,
        messages=[{"role": "user", "content": USER}],
        stream=True,
    )
    received: list[str] = []
    # Not wrapped by the SDK: the raw httpx2 error escapes the stream iterator.
    with pytest.raises(httpx2.RemoteProtocolError):
        await anthropic_text(stream, received)
    assert "".join(received) == "Echo: tell me"
    # The same through the messages.stream() helper.
    helper_received: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        await anthropic_helper_text(anthropic_client, helper_received)
    assert "".join(helper_received) == "Echo: tell me"


async def test_anthropic_cut_non_stream(
    fake_provider: FakeProviderServer, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    fake_provider.script(CutAfter(3))
    with pytest.raises(anthropic.APIConnectionError) as info:
        await anthropic_client.messages.create(
            model="claude-test-1", max_tokens=256, messages=[{"role": "user", "content": USER}]
        )
    assert type(info.value) is anthropic.APIConnectionError


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_hang_times_out(fake_provider: FakeProviderServer, stream: bool) -> None:
    fake_provider.script(Hang(2.0))
    started = time.monotonic()
    async with make_anthropic(fake_provider, timeout=SHORT) as client:
        with pytest.raises(anthropic.APITimeoutError):
            await client.messages.create(
                model="claude-test-1",
                max_tokens=16,
                messages=[{"role": "user", "content": "x"}],
                stream=stream,
            )
    assert time.monotonic() - started < 1.0


async def test_anthropic_idle_timeout_mid_stream(fake_provider: FakeProviderServer) -> None:
    fake_provider.script(HangAfter(2, 2.0))
    async with make_anthropic(fake_provider, timeout=SHORT) as client:
        stream = await client.messages.create(
            model="claude-test-1",
            max_tokens=256,
            messages=[{"role": "user", "content": USER}],
            stream=True,
        )
        # Mid-stream the SDK does not wrap it either: raw httpx2.ReadTimeout.
        with pytest.raises(httpx2.ReadTimeout):
            async for _ in stream:
                pass


async def test_anthropic_models(anthropic_client: anthropic.AsyncAnthropic) -> None:
    models = [m.id async for m in anthropic_client.models.list()]
    assert "claude-test-1" in models


# ------------------------------------------------------------------ Gemini


async def test_gemini_non_stream(
    fake_provider: FakeProviderServer, gemini_client: genai.Client
) -> None:
    r = await gemini_client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents=gemini_contents(),
        config=genai_types.GenerateContentConfig(system_instruction=SYSTEM),
    )
    assert r.text == EXPECTED
    assert r.candidates is not None
    assert r.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert r.usage_metadata is not None
    assert r.usage_metadata.prompt_token_count == HISTORY_WORDS
    assert r.usage_metadata.candidates_token_count == 7
    assert r.usage_metadata.total_token_count == HISTORY_WORDS + 7
    [req] = fake_provider.requests
    assert req.provider == "gemini"
    assert req.path == "/v1/models/gemini-2.5-flash:generateContent"
    assert req.headers["x-goog-api-key"] == "gemini-test-key"
    assert req.body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
    assert [c["role"] for c in req.body["contents"]] == ["user", "model", "user"]
    assert req.body["contents"][-1]["parts"] == [{"text": USER}]


async def test_gemini_stream(
    fake_provider: FakeProviderServer, gemini_client: genai.Client
) -> None:
    chunks = [
        chunk
        async for chunk in await gemini_client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents=USER
        )
    ]
    assert [c.text for c in chunks] == EXPECTED_TOKENS
    last = chunks[-1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == 7
    assert chunks[0].candidates is not None
    assert chunks[0].candidates[0].finish_reason is None
    [req] = fake_provider.requests
    assert req.path == "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


async def test_gemini_v1beta_and_max_tokens(fake_provider: FakeProviderServer) -> None:
    client = make_gemini(fake_provider, api_version="v1beta")
    try:
        chunks = [
            chunk
            async for chunk in await client.aio.models.generate_content_stream(
                model="gemini-2.5-flash",
                contents=USER,
                config=genai_types.GenerateContentConfig(max_output_tokens=3),
            )
        ]
    finally:
        await client.aio.aclose()
    assert "".join(c.text or "" for c in chunks) == "Echo: tell me"
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS
    assert fake_provider.requests[0].path.startswith("/v1beta/models/gemini-2.5-flash:stream")


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_rate_limit(
    fake_provider: FakeProviderServer, gemini_client: genai.Client, stream: bool
) -> None:
    fake_provider.script(Fail(429, retry_after=2))
    with pytest.raises(genai_errors.ClientError) as info:
        await gemini_reply(gemini_client, stream)
    assert info.value.code == 429
    assert info.value.status == "RESOURCE_EXHAUSTED"
    assert info.value.response is not None
    assert info.value.response.headers["retry-after"] == "2"
    # Also the way the real Gemini API says it: a RetryInfo detail in the body.
    assert info.value.details["error"]["details"][0]["retryDelay"] == "2s"


async def test_gemini_server_error(
    fake_provider: FakeProviderServer, gemini_client: genai.Client
) -> None:
    fake_provider.script(Fail(503))
    with pytest.raises(genai_errors.ServerError) as info:
        await gemini_client.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")


async def test_gemini_cut_mid_stream(
    fake_provider: FakeProviderServer, gemini_client: genai.Client
) -> None:
    fake_provider.script(CutAfter(3), CutAfter(3))
    received: list[str] = []
    # google-genai does not wrap transport errors: raw httpx2 (the backend pinned above).
    with pytest.raises(httpx2.RemoteProtocolError):
        await gemini_reply(gemini_client, True, out=received)
    assert "".join(received) == "Echo: tell me"
    with pytest.raises(httpx2.RemoteProtocolError):
        await gemini_reply(gemini_client, False)


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_hang_times_out(fake_provider: FakeProviderServer, stream: bool) -> None:
    fake_provider.script(Hang(2.0))
    client = make_gemini(fake_provider, timeout=SHORT)
    started = time.monotonic()
    try:
        with pytest.raises(httpx2.ReadTimeout):
            await gemini_reply(client, stream)
    finally:
        await client.aio.aclose()
    assert time.monotonic() - started < 1.0


async def test_gemini_idle_timeout_mid_stream(fake_provider: FakeProviderServer) -> None:
    fake_provider.script(HangAfter(2, 2.0))
    client = make_gemini(fake_provider, timeout=SHORT)
    received: list[str] = []
    try:
        with pytest.raises(httpx2.ReadTimeout):
            await gemini_reply(client, True, out=received)
    finally:
        await client.aio.aclose()
    assert "".join(received) == "Echo: tell"


async def test_gemini_models(
    fake_provider: FakeProviderServer, gemini_client: genai.Client
) -> None:
    names = [m.name async for m in await gemini_client.aio.models.list()]
    assert "models/gemini-2.5-flash" in names
    assert fake_provider.requests[0].provider == "gemini"


# ------------------------------------------------------------------ Cohere


async def test_cohere_non_stream(
    fake_provider: FakeProviderServer, cohere_client: cohere.AsyncClientV2
) -> None:
    r = await cohere_client.chat(
        model="command-a-03-2025",
        messages=[
            cohere.SystemChatMessageV2(content=SYSTEM),
            cohere.UserChatMessageV2(content="hi there"),
            cohere.AssistantChatMessageV2(content="hello"),
            cohere.UserChatMessageV2(content=USER),
        ],
    )
    assert r.message.content is not None
    assert r.message.content[0].type == "text"
    assert r.message.content[0].text == EXPECTED
    assert r.finish_reason == "COMPLETE"
    assert r.usage is not None
    assert r.usage.tokens is not None
    assert (r.usage.tokens.input_tokens, r.usage.tokens.output_tokens) == (HISTORY_WORDS, 7)
    assert r.usage.billed_units is not None
    assert r.usage.billed_units.output_tokens == 7
    [req] = fake_provider.requests
    assert (req.provider, req.path) == ("cohere", "/v2/chat")
    assert req.headers["authorization"] == "Bearer co-test-key"
    assert req.body["model"] == "command-a-03-2025"
    assert req.body["messages"][0] == {"role": "system", "content": SYSTEM}
    assert req.body["stream"] is False


async def test_cohere_stream(
    fake_provider: FakeProviderServer, cohere_client: cohere.AsyncClientV2
) -> None:
    events = [
        e
        async for e in cohere_client.chat_stream(
            model="command-a-03-2025", messages=[cohere.UserChatMessageV2(content=USER)]
        )
    ]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message-start", "content-start"]
    assert kinds[-2:] == ["content-end", "message-end"]
    deltas = [
        e.delta.message.content.text
        for e in events
        if e.type == "content-delta"
        and e.delta is not None
        and e.delta.message is not None
        and e.delta.message.content is not None
    ]
    assert deltas == EXPECTED_TOKENS
    end = events[-1]
    assert end.type == "message-end"
    assert end.delta is not None
    assert end.delta.finish_reason == "COMPLETE"
    assert end.delta.usage is not None
    assert end.delta.usage.tokens is not None
    assert end.delta.usage.tokens.output_tokens == 7
    assert fake_provider.requests[0].body["stream"] is True


async def test_cohere_length_finish(
    fake_provider: FakeProviderServer, cohere_client: cohere.AsyncClientV2
) -> None:
    fake_provider.script(Reply("cut short", finish="length"))
    r = await cohere_client.chat(
        model="command-a-03-2025", messages=[cohere.UserChatMessageV2(content="x")]
    )
    assert r.finish_reason == "MAX_TOKENS"


@pytest.mark.parametrize("stream", [False, True])
async def test_cohere_rate_limit(
    fake_provider: FakeProviderServer, cohere_client: cohere.AsyncClientV2, stream: bool
) -> None:
    fake_provider.script(Fail(429, retry_after=2, message="too many"))
    with pytest.raises(cohere.TooManyRequestsError) as info:
        await cohere_reply(cohere_client, stream)
    assert info.value.status_code == 429
    assert info.value.headers is not None
    assert info.value.headers["retry-after"] == "2"
    assert isinstance(info.value.body, dict)
    assert info.value.body["message"] == "too many"


async def test_cohere_server_error(
    fake_provider: FakeProviderServer, cohere_client: cohere.AsyncClientV2
) -> None:
    fake_provider.script(Fail(500), Fail(503))
    with pytest.raises(cohere.InternalServerError) as info:
        await cohere_client.chat(
            model="command-a-03-2025", messages=[cohere.UserChatMessageV2(content="x")]
        )
    assert info.value.status_code == 500
    # 503 has no class of its own in the SDK: the base ApiError.
    with pytest.raises(cohere.core.api_error.ApiError) as base:
        await cohere_client.chat(
            model="command-a-03-2025", messages=[cohere.UserChatMessageV2(content="x")]
        )
    assert base.value.status_code == 503


async def test_cohere_cut_mid_stream(
    fake_provider: FakeProviderServer, cohere_client: cohere.AsyncClientV2
) -> None:
    fake_provider.script(CutAfter(3), CutAfter(3))
    received: list[str] = []
    # cohere uses (legacy) httpx and does not wrap transport errors.
    with pytest.raises(httpx.RemoteProtocolError):
        await cohere_reply(cohere_client, True, out=received)
    assert "".join(received) == "Echo: tell me"
    with pytest.raises(httpx.RemoteProtocolError):
        await cohere_reply(cohere_client, False)


@pytest.mark.parametrize("stream", [False, True])
async def test_cohere_hang_times_out(fake_provider: FakeProviderServer, stream: bool) -> None:
    fake_provider.script(Hang(2.0))
    started = time.monotonic()
    async with make_cohere(fake_provider, timeout=SHORT) as client:
        with pytest.raises(httpx.ReadTimeout):
            await cohere_reply(client, stream)
    assert time.monotonic() - started < 1.0


async def test_cohere_idle_timeout_mid_stream(fake_provider: FakeProviderServer) -> None:
    fake_provider.script(HangAfter(2, 2.0))
    received: list[str] = []
    async with make_cohere(fake_provider, timeout=SHORT) as client:
        with pytest.raises(httpx.ReadTimeout):
            await cohere_reply(client, True, out=received)
    assert "".join(received) == "Echo: tell"


async def test_cohere_models(
    fake_provider: FakeProviderServer, cohere_client: cohere.AsyncClientV2
) -> None:
    r = await cohere_client.models.list()
    assert r.models is not None
    assert "command-a-03-2025" in [m.name for m in r.models]
    assert fake_provider.requests[0].provider == "cohere"


# ------------------------------------------------------------------ the server itself


async def test_script_is_one_fifo_across_providers(
    fake_provider: FakeProviderServer,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
    gemini_client: genai.Client,
    cohere_client: cohere.AsyncClientV2,
) -> None:
    fake_provider.script(Reply("first"), Fail(500), Reply(tokens=["th", "ird"]))
    assert fake_provider.pending == 3
    r1 = await openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}]
    )
    assert r1.choices[0].message.content == "first"
    with pytest.raises(anthropic.InternalServerError):
        await anthropic_client.messages.create(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    r3 = await gemini_client.aio.models.generate_content(model="g", contents="x")
    assert r3.text == "third"
    r4 = await cohere_client.chat(model="c", messages=[cohere.UserChatMessageV2(content="x")])
    assert r4.message.content is not None
    assert r4.message.content[0].text == "Echo: x"  # type: ignore[union-attr]
    assert fake_provider.pending == 0
    assert [r.provider for r in fake_provider.requests] == [
        "openai",
        "anthropic",
        "gemini",
        "cohere",
    ]
    assert fake_provider.generation_count == 4


async def test_slow_first_token_then_reply(
    fake_provider: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    fake_provider.script(Hang(0.15))
    started = time.monotonic()
    r = await openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "late"}]
    )
    assert time.monotonic() - started >= 0.15
    assert r.choices[0].message.content == "Echo: late"


async def test_token_count_and_interval(
    fake_provider: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    fake_provider.tokens = 10
    fake_provider.interval_s = 0.01
    started = time.monotonic()
    stream = await openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "a b"}], stream=True
    )
    deltas = [c.choices[0].delta.content async for c in stream if c.choices]
    assert time.monotonic() - started >= 0.1
    tokens = [d for d in deltas if d]
    assert len(tokens) == 10
    assert "".join(tokens).startswith("Echo: a b Echo: a")
    fake_provider.reset()
    defaults: tuple[int | None, float] = (fake_provider.tokens, fake_provider.interval_s)
    assert defaults == (None, 0.0)


async def test_unknown_route_and_bad_body(fake_provider: FakeProviderServer) -> None:
    async with httpx.AsyncClient(base_url=fake_provider.base_url) as http:
        assert (await http.get("/nope")).status_code == 404
        r = await http.post("/v1/messages", content=b"not json")
    assert r.status_code == 400
    assert r.json()["type"] == "error"


async def test_subprocess_mode() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes",
        "--port",
        "0",
        "--tokens",
        "5",
        "--interval-ms",
        "1",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode()
        base_url = line.strip().rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:")
        async with openai.AsyncOpenAI(
            base_url=f"{base_url}/v1", api_key="k", max_retries=0, timeout=10
        ) as client:
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "bench"}], stream=True
            )
            tokens = [c.choices[0].delta.content async for c in stream if c.choices]
        assert len([t for t in tokens if t]) == 5
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=10)
