"""Jobs for sandbox tests: plain functions a spawned worker can import by name."""

from __future__ import annotations

import sys
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


_held: list[bytearray] = []


def hold(megabytes: int) -> int:
    """Allocates ``megabytes`` and keeps them after the job (what a parser's allocator keeps
    after a large document); returns the worker's pid."""
    import os

    _held.append(bytearray(megabytes * 1024 * 1024))
    return os.getpid()


def out_of_memory_unless_first_job() -> int:
    """Runs out of memory in a worker that has done other jobs (what they left behind is to
    blame); in a fresh worker returns its pid."""
    import os

    from omnichat.documents.extraction import sandbox

    if sandbox._Worker.jobs > 1:
        raise MemoryError
    return os.getpid()


def parse_xml_short_of_memory() -> None:
    """Parses a large XML document after lowering this worker's memory cap to a little above
    what it uses, failing the way a parser does (a corrupt-file error raised from lxml's)."""
    import resource

    from lxml import etree

    from omnichat.documents.extraction import UnreadableDocument
    from omnichat.documents.extraction.sandbox import _address_space_bytes

    xml = b"<doc>" + b"<p>Some words in a paragraph.</p>" * 2_000_000 + b"</doc>"
    cap = _address_space_bytes() + 32 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    try:
        etree.fromstring(xml)
    except etree.XMLSyntaxError as exc:
        raise UnreadableDocument("The file is corrupt or malformed and could not be read") from exc


def loaded(modules: list[str]) -> list[str]:
    """Which of ``modules`` the worker has imported (what its memory cap pays for)."""
    return [name for name in modules if name in sys.modules]


def die_by_signal(signal_number: int, tries_file: str, times: int) -> str:
    """Counts its tries in ``tries_file``; the first ``times`` end the worker with
    ``signal_number`` mid-job (SIGKILL: the OOM killer's pick or an operator's; SIGSEGV: a
    parser's crash), later ones return."""
    import os
    from pathlib import Path

    path = Path(tries_file)
    tries = int(path.read_text()) if path.exists() else 0
    path.write_text(str(tries + 1))
    if tries < times:
        os.kill(os.getpid(), signal_number)
        time.sleep(10)
    return "survived"
