"""Scripted behaviours: each incoming generation request consumes one, whatever the provider.

With nothing scripted the server replies "Echo: <last user message>" in word tokens.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    """Return/stream these tokens (or `text` split into word tokens; neither: the echo).

    `interval_s` is slept before each streamed token (None: the server's default interval); a
    non-streamed reply waits interval_s x tokens before its response.
    `finish` is "stop" or "length" (mapped to each provider's own value) or a raw
    provider value, passed through as is (e.g. "tool_use", "SAFETY", "content_filter", "";
    a raw block value with no text makes a Gemini candidate without content, as Gemini sends
    it). None: no finish value, the end marker all the same (OpenAI `"finish_reason":null`
    then `data: [DONE]`; Anthropic `"stop_reason":null` then `message_stop`; Cohere
    `"finish_reason":null` in `message-end`); Gemini's only end marker is `finishReason`, so
    there its stream simply ends without one.
    """

    text: str | None = None
    tokens: list[str] | None = None
    interval_s: float | None = None
    finish: str | None = "stop"


@dataclass(frozen=True, slots=True)
class Fail:
    """An error response in the provider's own error shape, before any token, `after_s`
    seconds after the request."""

    status: int = 500
    retry_after: float | None = None
    message: str | None = None
    after_s: float = 0.0


@dataclass(frozen=True, slots=True)
class CutAfter:
    """Stream `n_tokens` tokens, then drop the connection: no terminal event, no final chunk.

    For a non-streamed request: headers with the full Content-Length, then half the body, then
    the connection drops. The tokens come from `text`/`tokens` or else the echo.
    """

    n_tokens: int
    text: str | None = None
    tokens: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Hang:
    """Send nothing at all (no status line) for `seconds`, then reply as usual if the client
    is still there. Ends early when the client disconnects."""

    seconds: float


@dataclass(frozen=True, slots=True)
class HangAfter:
    """Stream `n_tokens` tokens, go silent for `seconds`, then finish the reply if the client is
    still there. Non-streamed: the status line and headers go out, the body `seconds` later."""

    n_tokens: int
    seconds: float
    text: str | None = None
    tokens: list[str] | None = None


@dataclass(frozen=True, slots=True)
class PromptBlocked:
    """Gemini only: the prompt is blocked, a 200 response with `promptFeedback.blockReason`
    (a google-genai `types.BlockedReason` value) and no candidates, streamed (one SSE chunk) or
    whole. Other providers have no such response: scripted for one, the server answers 400."""

    block_reason: str = "SAFETY"


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """Reply with these function calls, ``(name, arguments as JSON text)`` each, after ``text``
    if any, ending with the provider's tool-use finish value. Streamed, each call comes in the
    provider's own pieces (OpenAI: its id and name, then its arguments in two parts)."""

    calls: list[tuple[str, str]]
    text: str | None = None


Behaviour = Reply | Fail | CutAfter | Hang | HangAfter | PromptBlocked | ToolCalls
