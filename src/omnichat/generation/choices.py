"""Several choices of one request (OpenAI's ``n``), each its own provider call, run at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable
from typing import TypeVar

from omnichat.generation.sse import aclose
from omnichat.llm.types import StreamEvent

T = TypeVar("T")


async def all_or_none(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Every result in order, run concurrently; when one raises, the rest are cancelled (and
    awaited) before its exception propagates, so no call outlives the request."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def close_streams(streams: Iterable[AsyncIterator[StreamEvent]]) -> None:
    """Ends provider streams at once (their connections go back or are closed), not at GC; a
    stream that fails while closing does not keep the others open."""
    for stream in streams:
        with contextlib.suppress(Exception):
            await aclose(stream)


async def indexed(
    first: StreamEvent, rest: AsyncIterator[StreamEvent]
) -> AsyncGenerator[tuple[int, StreamEvent]]:
    """One choice's events as choice 0's; closing this closes ``rest``."""
    try:
        yield 0, first
        async for event in rest:
            yield 0, event
    finally:
        await close_streams([rest])


async def merged(
    firsts: list[StreamEvent], streams: list[AsyncIterator[StreamEvent]]
) -> AsyncGenerator[tuple[int, StreamEvent]]:
    """The events of every choice as ``(choice index, event)``, in the order they arrive (each
    choice's own in order), ``firsts`` being each stream's first event, already read. The first
    error of any stream is raised here, the other streams cancelled; closing this iterator
    cancels them all."""
    # (index, an event, the stream's error, or None: the stream ended)
    queue: asyncio.Queue[tuple[int, StreamEvent | Exception | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[StreamEvent]) -> None:
        try:
            async for event in stream:
                queue.put_nowait((index, event))
        except Exception as error:  # handed to the consumer, raised there
            queue.put_nowait((index, error))
        finally:
            queue.put_nowait((index, None))

    for index, first in enumerate(firsts):
        yield index, first
    pumps = [asyncio.create_task(pump(i, stream)) for i, stream in enumerate(streams)]
    try:
        running = len(pumps)
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield index, item
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await close_streams(streams)
