"""Starting the app's own shutdown work the moment the process is told to stop.

uvicorn, on SIGTERM or SIGINT, stops accepting, waits up to its grace for open connections to
close, and only then runs the lifespan's shutdown. Streams that follow a running reply would be
cut at the end of that grace with no closing event. The lifespan therefore watches the same
signals (beside uvicorn's handler, which still runs) and lets the replies end within the grace.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def on_stop_signal(begin: Callable[[], Coroutine[Any, Any, None]]) -> Iterator[None]:
    """While open, the first SIGTERM or SIGINT also starts ``begin()`` as a task on the running
    loop; the handler found on entry (the server's) still runs for every signal. Only in the
    main thread (where signals are delivered), and only for a signal some Python handler already
    catches (a process that dies on it keeps dying on it); on exit the handlers found are back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    started: list[asyncio.Task[None]] = []

    def start() -> None:
        if not started:
            started.append(loop.create_task(begin()))

    previous: dict[int, Callable[[int, FrameType | None], Any]] = {}
    for stop_signal in STOP_SIGNALS:
        found = signal.getsignal(stop_signal)
        if callable(found):
            previous[stop_signal] = found

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(start)
        previous[sig](sig, frame)

    for caught in previous:
        signal.signal(caught, handler)
    try:
        yield
    finally:
        for caught, chained in previous.items():
            if signal.getsignal(caught) is handler:
                signal.signal(caught, chained)
        for task in started:
            if not task.done():
                task.cancel()
