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
    provider value, passed through as is (e.g. "tool_use", "SAFETY").
    """

    text: str | None = None
    tokens: list[str] | None = None
    interval_s: float | None = None
    finish: str = "stop"


@dataclass(frozen=True, slots=True)
class Fail:
    """An error response in the provider's own error shape, before any token."""

    status: int = 500
    retry_after: float | None = None
    message: str | None = None


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


Behaviour = Reply | Fail | CutAfter | Hang | HangAfter
