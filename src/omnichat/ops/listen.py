"""Running one uvicorn worker with its listening socket polled through several descriptors.

uvloop (libuv 1.52) accepts at most ONE connection per listening descriptor per event-loop
iteration. Under streaming load an iteration takes ~10 ms (it relays every token that is ready),
so at 100 concurrent streams new connections waited ~300 ms in the kernel's accept queue: half of
their time to first token, before the app saw them. Duplicates of the one listening socket
(``os.dup``: the same socket on the same port, not SO_REUSEPORT, so a second server on the port
still fails to bind) are each polled, and an iteration accepts up to ``ACCEPT_DESCRIPTORS``
connections; a descriptor with nothing left to accept gets EAGAIN, which libuv skips.

Once started, the worker also freezes its start-up heap (``gc.freeze``): the ~280k objects of
the imported libraries and the app never become garbage, yet every full collection walked them
all, a pause of ~120 ms for every open stream.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
from typing import Any

import uvicorn

ACCEPT_DESCRIPTORS = 16
_STARTUP_FAILURE = 3  # uvicorn's exit status when the server did not start


def listening_descriptors(sock: socket.socket, count: int) -> list[socket.socket]:
    """``sock`` and ``count - 1`` duplicates of it."""
    return [sock, *(socket.socket(fileno=os.dup(sock.fileno())) for _ in range(count - 1))]


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        gc.collect()
        gc.freeze()


def serve(app: Any, options: dict[str, Any], descriptors: int = ACCEPT_DESCRIPTORS) -> None:
    """What ``uvicorn.run(app, **options)`` does for one worker, with ``descriptors`` ways in."""
    config = uvicorn.Config(app, **options)
    server = _Server(config)
    sockets = listening_descriptors(config.bind_socket(), descriptors)
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    finally:
        for sock in sockets:
            sock.close()
    if not server.started:
        sys.exit(_STARTUP_FAILURE)
