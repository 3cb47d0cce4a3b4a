"""EventStreamResponse as a raw ASGI app (one module, no server): where its messages go, and
what a client's disconnect or an outside cancellation does to the body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from omnichat.generation.sse import EventStreamResponse
from omnichat.ops.middleware import BODY_SEND


class Harness:
    def __init__(self) -> None:
        self.via_chain: list[dict[str, Any]] = []
        self.via_body_send: list[dict[str, Any]] = []
        self.disconnect = asyncio.Event()
        self.scope: dict[str, Any] = {"type": "http", BODY_SEND: self._body_send}

    async def send(self, message: dict[str, Any]) -> None:
        self.via_chain.append(message)

    async def _body_send(self, message: dict[str, Any]) -> None:
        self.via_body_send.append(message)

    async def receive(self) -> dict[str, Any]:
        await self.disconnect.wait()
        return {"type": "http.disconnect"}


async def test_the_start_passes_the_middleware_chain_and_the_body_goes_straight_out() -> None:
    harness = Harness()
    closed: list[bool] = []

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            yield b"data: 2\n\n"
        finally:
            closed.append(True)

    await EventStreamResponse(events())(harness.scope, harness.receive, harness.send)
    assert [m["type"] for m in harness.via_chain] == ["http.response.start"]
    start = harness.via_chain[0]
    assert start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert (b"cache-control", b"no-cache") in start["headers"]
    assert [(m["body"], m["more_body"]) for m in harness.via_body_send] == [
        (b"data: 1\n\n", True),
        (b"data: 2\n\n", True),
        (b"", False),
    ]
    assert closed == [True]


async def test_without_the_middleware_every_message_uses_the_send_it_was_given() -> None:
    harness = Harness()
    del harness.scope[BODY_SEND]

    async def events() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"

    await EventStreamResponse(events())(harness.scope, harness.receive, harness.send)
    assert [m["type"] for m in harness.via_chain] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]


async def _stalled_stream(harness: Harness) -> tuple[asyncio.Task[None], asyncio.Event]:
    """A response whose body sent one event and then waits on a provider that went quiet;
    returns its task and an event set once the body has been closed."""
    closed = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"data: first\n\n"
            await asyncio.sleep(3600)
            yield b"data: never\n\n"
        finally:
            closed.set()

    response = asyncio.create_task(
        EventStreamResponse(events())(harness.scope, harness.receive, harness.send)
    )
    await asyncio.sleep(0.05)
    return response, closed


async def test_a_disconnect_stops_a_waiting_body_at_once_and_the_request_ends_normally() -> None:
    harness = Harness()
    response, closed = await _stalled_stream(harness)
    harness.disconnect.set()
    await asyncio.wait_for(response, 5)  # returns, no CancelledError
    assert closed.is_set()
    assert [m["body"] for m in harness.via_body_send] == [b"data: first\n\n"]
    assert response.cancelling() == 0


async def test_a_cancellation_from_outside_still_propagates() -> None:
    harness = Harness()
    response, closed = await _stalled_stream(harness)
    response.cancel()
    with pytest.raises(asyncio.CancelledError):
        await response
    assert closed.is_set()
