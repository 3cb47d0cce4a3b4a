"""Server-sent events for seed 001's ``/chat/stream``: ``data: {"delta": ...}`` per token, one
closing event with the reply's status, then ``data: [DONE]``. Extra keys ride inside the JSON, so
a client that reads every ``data:`` line as ``{"delta": ...}`` keeps working. Bytes are built by
hand: no per-token pydantic, one write per batch of tokens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from omnichat.errors import ClientClosedRequest
from omnichat.generation.hub import Reply, ReplyFinal, StreamHub
from omnichat.ops.middleware import BODY_SEND

T = TypeVar("T")
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}
KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"
_DELTA_PREFIX = b'data: {"delta": '
_DELTA_SUFFIX = b"}\n\n"


class EventStreamResponse(StreamingResponse):
    """``text/event-stream``, with a short path per event.

    Starlette's ``StreamingResponse`` runs the body in an anyio task group beside a disconnect
    listener, and every chunk passes through each middleware's ``send``. Here the body runs in
    the request's own task, one plain task waits for the disconnect (and then cancels the body,
    as the task group would), and chunks go to the ``send`` our outermost middleware received
    (``BODY_SEND``): the layers inside it look only at ``http.response.start``, which still
    passes through all of them. A middleware that rewrote bodies would not see these."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``on_close`` is awaited once the stream has ended, however it ended."""
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body_send: Send = scope.get(BODY_SEND, send)
        task = asyncio.current_task()
        assert task is not None
        streaming = True

        def on_disconnect(watcher: asyncio.Task[None]) -> None:
            if streaming and not watcher.cancelled() and watcher.exception() is None:
                task.cancel()

        watcher = asyncio.create_task(_disconnected(receive))
        watcher.add_done_callback(on_disconnect)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self.body_iterator:
                await body_send({"type": "http.response.body", "body": chunk, "more_body": True})
            await body_send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not (watcher.done() and not watcher.cancelled()):
                raise  # cancelled from outside: shutting down
            task.uncancel()  # the client has gone: nothing left to send
        finally:
            streaming = False
            watcher.cancel()
            try:
                await aclose(self.body_iterator)
            finally:
                if self._on_close is not None:
                    await self._on_close()


async def aclose(iterator: object) -> None:
    """Closes an async generator now (its ``finally`` runs, its connections go back), not at
    GC; anything without ``aclose`` is left alone."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result, for a request whose body has been read; if the client goes away
    first, ``work`` is cancelled (its provider calls end, its slot is given back) and
    ``ClientClosedRequest`` (499) is raised: no one is left to answer."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait([task, watcher], return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():  # the client left, or the server is stopping
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ClientClosedRequest()
    return task.result()


def sse_data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


def delta_events(deltas: list[str]) -> bytes:
    return b"".join(
        _DELTA_PREFIX + json.dumps(d, ensure_ascii=False).encode() + _DELTA_SUFFIX for d in deltas
    )


def final_payload(message_id: str, final: ReplyFinal) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "delta": "",
        "done": True,
        "message_id": message_id,
        "status": final.status,
        "model": final.model,
        "finish_reason": final.finish_reason,
        "usage": {
            "input_tokens": final.usage.input_tokens,
            "output_tokens": final.usage.output_tokens,
        },
    }
    if final.error:
        payload["error"] = final.error
    if final.code:
        payload["error_code"] = final.code
    if final.sources is not None:
        payload["sources"] = final.sources
    return payload


async def reply_events(
    hub: StreamHub, reply: Reply, keepalive_s: float, *, start: int = 0
) -> AsyncIterator[bytes]:
    yield sse_data(
        {
            "delta": "",
            "message_id": reply.message_id,
            "session_id": reply.session_id,
            "model": reply.model,
        }
    )
    async for item in hub.follow(reply, start, keepalive_s):
        if item is None:
            yield KEEPALIVE
        elif isinstance(item, list):
            yield delta_events(item)
        else:
            yield sse_data(final_payload(reply.message_id, item)) + DONE


async def stored_reply_events(
    message_id: str, content: str, final: ReplyFinal
) -> AsyncIterator[bytes]:
    """A finished reply no hub holds any more, replayed from the database."""
    yield sse_data({"delta": "", "message_id": message_id, "model": final.model})
    if content:
        yield delta_events([content])
    yield sse_data(final_payload(message_id, final)) + DONE
