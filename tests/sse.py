"""Reading server-sent events the way a simple client does: every ``data:`` line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


@dataclass
class LiveStream:
    """A ``/chat/stream`` response still open, read up to some point."""

    response: httpx.Response
    transcript: SSETranscript

    @property
    def message_id(self) -> str:
        return str(self.transcript.first["message_id"])

    async def finish(self) -> SSETranscript:
        return await read_events(self.response, self.transcript)


@asynccontextmanager
async def open_chat_stream(
    client: httpx.AsyncClient, headers: dict[str, str], *, read_deltas: int, **body: Any
) -> AsyncIterator[LiveStream]:
    """POST /chat/stream with ``body``, read ``read_deltas`` tokens, hand over the open stream."""
    async with client.stream("POST", "/chat/stream", json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        live = LiveStream(response, SSETranscript())
        await read_events(response, live.transcript, stop_after_deltas=read_deltas)
        yield live


async def assert_unreachable(client: httpx.AsyncClient, message_id: str, intruder: Any) -> None:
    """Another user can neither re-attach to nor stop the reply: 404, as for a missing one."""
    r = await client.get(f"/chat/stream/{message_id}", headers=intruder.headers)
    assert r.status_code == 404
    r = await client.post(f"/chat/stop/{message_id}", headers=intruder.headers)
    assert r.status_code == 404
