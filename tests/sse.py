"""Reading server-sent events the way a simple client does: every ``data:`` line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

DONE = "[DONE]"


@dataclass
class SSETranscript:
    events: list[Any] = field(default_factory=list)  # parsed JSON payloads, and DONE
    comments: list[str] = field(default_factory=list)
    lines: Any = None  # the response's line iterator, kept so reading can resume

    @property
    def text(self) -> str:
        return "".join(e.get("delta", "") for e in self.events if isinstance(e, dict))

    @property
    def final(self) -> dict[str, Any]:
        finals = [e for e in self.events if isinstance(e, dict) and e.get("done")]
        assert len(finals) == 1, self.events
        return finals[0]

    @property
    def first(self) -> dict[str, Any]:
        first = self.events[0]
        assert isinstance(first, dict)
        return first


async def read_events(
    response: httpx.Response, transcript: SSETranscript, *, stop_after_deltas: int | None = None
) -> SSETranscript:
    """Reads until the stream ends or ``stop_after_deltas`` non-empty deltas; a later call on
    the same response carries on where this one stopped."""
    if transcript.lines is None:
        transcript.lines = response.aiter_lines()
    lines = transcript.lines
    deltas = 0
    async for line in lines:
        if line.startswith(":"):
            transcript.comments.append(line)
        elif line.startswith("data: "):
            data = line[len("data: ") :]
            transcript.events.append(DONE if data == DONE else json.loads(data))
            if data != DONE and json.loads(data).get("delta"):
                deltas += 1
                if stop_after_deltas is not None and deltas >= stop_after_deltas:
                    return transcript
        else:
            assert line == "", f"unexpected SSE line {line!r}"
    return transcript


async def stream_sse(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> SSETranscript:
    transcript = SSETranscript()
    async with client.stream(method, url, **kwargs) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        await read_events(response, transcript)
    return transcript
