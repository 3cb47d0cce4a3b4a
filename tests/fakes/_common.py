"""Shared pieces of the fake providers: parsed requests, tokenising, JSON and SSE framing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

_TOKEN_RE = re.compile(r"\s*\S+")

# Our portable finish reasons; anything else is passed through to the wire unchanged, and None
# is no finish value at all (see `Reply.finish`).
STOP = "stop"
LENGTH = "length"
Finish = str | None


def wire_finish(finish: Finish, names: dict[str, str]) -> str | None:
    """A provider's finish value: `names` maps ours ("stop", "length"); raw values pass as is."""
    return names.get(finish, finish) if finish is not None else None


def split_tokens(text: str) -> list[str]:
    """Word tokens that keep their leading whitespace, like real deltas: "a b" -> ["a", " b"]."""
    return _TOKEN_RE.findall(text)


def count_words(text: str) -> int:
    return len(text.split())


def dumps(obj: Any) -> bytes:
    """Compact JSON, the way the real APIs send it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@lru_cache(maxsize=8192)
def json_str(text: str) -> bytes:
    """A JSON string literal for `text` (cached: the hot path encodes the same tokens often)."""
    return json.dumps(text, ensure_ascii=False).encode()


def sse_data(payload: bytes, eol: bytes = b"\n") -> bytes:
    return b"data: " + payload + eol + eol


def sse_event(event: str, payload: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts/blocks with `text`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return ""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class GenRequest:
    """What the server needs to know about one generation request, whatever the provider."""

    model: str
    stream: bool
    last_user_text: str
    input_tokens: int
    max_tokens: int | None = None
    include_usage: bool = False  # OpenAI `stream_options.include_usage`
    # OpenAI `logprobs: true`: the number of `top_logprobs` asked for (0 when not given).
    logprobs: int | None = None


class StreamEncoder(Protocol):
    """Builds one streamed response's bytes. Made per request; token() is the hot path."""

    def head(self) -> bytes: ...

    def token(self, text: str) -> bytes: ...

    def last_token(self, text: str, finish: Finish, usage: Usage) -> bytes: ...

    def tail(self, finish: Finish, usage: Usage) -> bytes: ...


class ProviderFormat(Protocol):
    """One provider's wire format."""

    name: str
    stream_content_type: bytes

    def parse(self, path: str, body: dict[str, Any]) -> GenRequest: ...

    def response(self, req: GenRequest, text: str, finish: Finish, usage: Usage) -> bytes: ...

    def stream(self, req: GenRequest) -> StreamEncoder: ...

    def error(self, status: int, message: str, retry_after: float | None = None) -> bytes: ...

    def models(self) -> bytes: ...


@runtime_checkable
class ToolCallFormat(Protocol):
    """A format that can answer with tool calls (``behaviours.ToolCalls``)."""

    def tool_calls(self, req: GenRequest, calls: list[tuple[str, str]], text: str | None) -> bytes:
        """The whole response body: streamed (server-sent events) when ``req.stream``."""
        ...


class SimpleTail:
    """Mixin: the last token is an ordinary token followed by the tail."""

    def token(self, text: str) -> bytes:
        raise NotImplementedError

    def tail(self, finish: Finish, usage: Usage) -> bytes:
        raise NotImplementedError

    def last_token(self, text: str, finish: Finish, usage: Usage) -> bytes:
        return self.token(text) + self.tail(finish, usage)


FAKE_MODELS: dict[str, list[str]] = {
    "openai": ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"],
    "anthropic": ["claude-test-1", "claude-haiku-4-5"],
    "gemini": ["gemini-2.5-flash", "gemini-2.5-pro"],
    "cohere": ["command-a-03-2025", "command-r-plus"],
}
