"""The provider-side SSE parser and the OpenAI adapter's stream over it."""

from __future__ import annotations

import httpx2
import openai
import pytest

from omnichat.llm.base import ProviderConfig
from omnichat.llm.errors import ProviderConnectionError, ProviderError
from omnichat.llm.providers.openai import OpenAIChatModel
from omnichat.llm.sse import SSEDataParser
from omnichat.llm.types import ChatTurn, GenerationRequest, StreamEnd, TextDelta


def test_all_events_of_one_read_at_once() -> None:
    parser = SSEDataParser()
    assert parser.feed(b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n') == [
        b'{"a":1}',
        b'{"b":2}',
        b"[DONE]",
    ]
    assert parser.pending == b""


def test_event_split_across_reads_waits_for_its_end() -> None:
    parser = SSEDataParser()
    assert parser.feed(b'data: {"a"') == []
    assert parser.feed(b":1}\n") == []
    assert parser.feed(b"\ndata: x") == [b'{"a":1}']
    assert parser.pending == b"data: x"


def test_crlf_line_ends_even_split_between_reads() -> None:
    parser = SSEDataParser()
    # A lone \r ends a line too; the \n that follows it in the next read is the same line end.
    assert parser.feed(b"data: one\r\n\r") == [b"one"]
    assert parser.feed(b"\ndata: two\r\n\r\n") == [b"two"]
    assert parser.pending == b""


def test_comments_fields_and_multiline_data() -> None:
    parser = SSEDataParser()
    stream = b': keep-alive\n\nevent: error\ndata: {"error":\ndata:  1}\nid: 7\n\nretry: 5\n\n'
    assert parser.feed(stream) == [b'{"error":\n 1}']


def _model(handler: httpx2.MockTransport) -> OpenAIChatModel:
    model = OpenAIChatModel(ProviderConfig("openai", "openai", "sk-test", "http://fake.test/v1"))
    model._client = openai.AsyncOpenAI(
        api_key="sk-test",
        base_url="http://fake.test/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=handler),
    )
    return model


def _sse(body: bytes) -> httpx2.MockTransport:
    return httpx2.MockTransport(
        lambda request: httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=body
        )
    )


async def _collect(model: OpenAIChatModel, seen: list[object]) -> None:
    async for event in model.stream(REQUEST):
        seen.append(event)


REQUEST = GenerationRequest(model="gpt-test", messages=(ChatTurn("user", "hi"),))
CHUNK = b'data: {"choices":[{"delta":{"content":"%s"},"finish_reason":%s}]}\n\n'


async def test_openai_stream_yields_deltas_then_end_with_usage() -> None:
    body = (
        CHUNK % (b"Hel", b"null")
        + CHUNK % (b"lo", b'"stop"')
        + b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
        + b"data: [DONE]\n\n"
    )
    events = [event async for event in _model(_sse(body)).stream(REQUEST)]
    assert events[:2] == [TextDelta("Hel"), TextDelta("lo")]
    assert isinstance(events[2], StreamEnd)
    assert events[2].finish_reason == "stop"
    assert (events[2].usage.input_tokens, events[2].usage.output_tokens) == (3, 2)


async def test_openai_stream_without_finish_reason_is_a_cut() -> None:
    body = CHUNK % (b"Hel", b"null")
    with pytest.raises(ProviderConnectionError):
        await _collect(_model(_sse(body)), [])


async def test_openai_in_stream_error_is_a_provider_error() -> None:
    body = CHUNK % (b"Hel", b"null") + b'data: {"error":{"message":"overloaded"}}\n\n'
    seen: list[object] = []
    with pytest.raises(ProviderError) as caught:
        await _collect(_model(_sse(body)), seen)
    assert seen == [TextDelta("Hel")]
    assert isinstance(caught.value.__cause__, openai.APIError)
    assert "sk-test" not in str(caught.value)
