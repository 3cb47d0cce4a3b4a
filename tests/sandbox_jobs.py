"""Jobs for sandbox tests: plain functions a spawned worker can import by name."""

from __future__ import annotations

import time


def allocate(megabytes: int) -> int:
    """Holds ``megabytes`` of memory at once (a parser blowing up on a hostile file)."""
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


def spin(seconds: float) -> str:
    """Busy for ``seconds`` without ever checking a deadline (a parser stuck in C code)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        pass
    return "done"


def echo(value: str) -> str:
    return value


def _refuse_to_load() -> None:
    raise AttributeError("this job cannot be loaded in a worker")


class Unloadable:
    """Pickles, but a worker cannot load it (as after an upgrade renamed a class under a
    running server): the worker dies before it takes the job."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_refuse_to_load, ())


def pid() -> int:
    import os

    return os.getpid()


class _Unpicklable(Exception):
    """An exception holding something that cannot be pickled (as lxml's hold their error log)."""

    def __init__(self) -> None:
        super().__init__("unpicklable")
        self.handle = lambda: None


def raise_unpicklable() -> None:
    raise _Unpicklable
