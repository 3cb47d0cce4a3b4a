"""Writing one response: whole, streamed token by token, cut off or stalled, as scripted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tests.fakes._common import Finish, GenRequest, ProviderFormat, Usage

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADER = (b"content-type", b"application/json")


class _CutFilter(logging.Filter):
    """Silences uvicorn's complaint about the responses we cut off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("ASGI callable returned without completing")


logging.getLogger("uvicorn.error").addFilter(_CutFilter())


class Disconnect:
    """Watches `receive` for the client going away (the request body is already read)."""

    def __init__(self, receive: Receive) -> None:
        self._task: asyncio.Task[None] = asyncio.ensure_future(self._watch(receive))

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    @property
    def happened(self) -> bool:
        return self._task.done()

    async def wait(self, seconds: float) -> bool:
        """Sleeps up to `seconds`; True as soon as the client disconnects."""
        done, _ = await asyncio.wait({self._task}, timeout=seconds)
        return bool(done)

    def close(self) -> None:
        self._task.cancel()


class Run:
    """One generation response, streamed or whole."""

    def __init__(
        self,
        fmt: ProviderFormat,
        req: GenRequest,
        tokens: list[str],
        finish: Finish,
        interval: float,
        send: Send,
        disconnect: Disconnect,
    ) -> None:
        self.fmt, self.req, self.tokens, self.finish = fmt, req, tokens, finish
        self.interval, self.send, self.disconnect = interval, send, disconnect
        self.cut_at: int | None = None  # drop the connection before this token
        self.hang_at: int | None = None  # go silent for hang_s before this token
        self.hang_s = 0.0
        self.usage = Usage(req.input_tokens, len(tokens))

    async def _body(self, data: bytes, more: bool) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def stream(self) -> None:
        enc = self.fmt.stream(self.req)
        await self.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", self.fmt.stream_content_type),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        head = enc.head()
        if head:
            await self._body(head, True)
        n = len(self.tokens)
        cut_at, hang_at = self.cut_at, self.hang_at
        last = n - 1 if cut_at is None or cut_at >= n else -1  # no finish when cut after all
        for i, token in enumerate(self.tokens):
            if i == cut_at:
                return  # returning before more_body=False: uvicorn drops the connection
            if i == hang_at and await self.disconnect.wait(self.hang_s):
                return
            if self.interval > 0:
                await asyncio.sleep(self.interval)
            if self.disconnect.happened:
                return
            if i == last:
                await self._body(enc.last_token(token, self.finish, self.usage), False)
                return
            await self._body(enc.token(token), True)
        if cut_at is not None:
            return
        if hang_at is not None and hang_at >= n and await self.disconnect.wait(self.hang_s):
            return
        await self._body(enc.tail(self.finish, self.usage), False)

    async def whole(self) -> None:
        body = self.fmt.response(self.req, "".join(self.tokens), self.finish, self.usage)
        if self.interval > 0 and await self.disconnect.wait(self.interval * len(self.tokens)):
            return
        headers = [JSON_HEADER, (b"content-length", str(len(body)).encode())]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        if self.cut_at is not None:
            await self._body(body[: len(body) // 2], True)
            return  # the connection drops with the body half sent
        if self.hang_at is not None and await self.disconnect.wait(self.hang_s):
            return
        await self._body(body, False)


async def respond_events(send: Send, content_type: bytes, body: bytes) -> None:
    """A 200 event stream whose events are all in `body`."""
    headers = [(b"content-type", content_type), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def respond(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [JSON_HEADER, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
