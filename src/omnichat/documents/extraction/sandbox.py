"""Parsing untrusted files in worker processes that may be killed, scheduled fairly per user.

Every job runs in a pebble ``ProcessPool`` worker whose address space is capped
(``RLIMIT_AS``): a file that makes its parser allocate past the cap fails there with a
``MemoryError`` (or the worker dies), never in the server. A job that runs past its time limit
has its worker killed and replaced. Either way the caller gets ``DocumentTooComplex`` (422).

Jobs wait in one queue per owner and are handed to free workers round robin, and no owner
holds every worker at once (with two or more), so one user's heavy uploads cost another
user's one-page upload a share of the CPU, not a wait behind them. Cancelling the
caller (a deleted document) withdraws a queued job and kills a running one.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import resource
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessPool

from omnichat.documents.extraction.errors import DocumentTooComplex, UnreadableDocument
from omnichat.errors import AppError, ServiceUnavailable
from omnichat.fairness import FairSlots

logger = logging.getLogger("omnichat.documents.sandbox")
T = TypeVar("T")
# A worker is replaced after this many jobs: whatever a parser leaks does not pile up.
JOBS_PER_WORKER = 50


def _call_in_worker(function: Callable[..., T], args: tuple[Any, ...]) -> T:
    """Runs ``function`` in the worker. What it raises must travel back to the server: an
    ``AppError`` or ``MemoryError`` as it is; anything else (a parser's own exception, which may
    hold objects that cannot be pickled, such as lxml's error log) as ``UnreadableDocument``."""
    try:
        return function(*args)
    except (AppError, MemoryError):
        raise
    except Exception as exc:
        logger.info("parser failed: %s: %s", type(exc).__name__, exc)
        raise UnreadableDocument(
            f"The file could not be read: its reader failed ({type(exc).__name__})"
        ) from None


def _limit_memory(max_bytes: int) -> None:
    """Runs in each new worker before its first job."""
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


class SandboxPool:
    """``await pool.run(owner, function, *args, timeout_s=...)``: ``function(*args)`` in a
    capped worker, on ``owner``'s turn. ``function`` and its arguments must pickle; its
    exceptions come back as they were raised (an ``AppError`` stays one)."""

    def __init__(self, name: str, workers: int, memory_bytes: int) -> None:
        self.name = name
        # One owner never holds every worker: with two or more, one is always left for the
        # others' jobs, whatever one user has queued.
        self._slots = FairSlots(workers, per_owner=max(1, workers - 1))
        self._workers = workers
        self._memory_bytes = memory_bytes
        self._pool: ProcessPool | None = None

    async def run(self, owner: str, function: Callable[..., T], *args: Any, timeout_s: float) -> T:
        async with self._slots.slot(owner):
            for attempt in (1, 2):
                try:
                    return await self._run_once(function, args, timeout_s)
                except (BrokenProcessPool, RuntimeError) as exc:
                    # The pool itself broke (a worker killed while idle, by the OOM killer or
                    # an operator; workers that cannot start): the job never ran, and it is
                    # not the file's fault. A new pool gets one more try.
                    logger.error("%s pool broke (attempt %d): %r", self.name, attempt, exc)
                    self._discard_pool()
            raise ServiceUnavailable(
                "The document reader could not start its worker processes; try again later"
            )

    async def _run_once(
        self, function: Callable[..., T], args: tuple[Any, ...], timeout_s: float
    ) -> T:
        future = self._get_pool().schedule(_call_in_worker, (function, args), timeout=timeout_s)
        try:
            result: T = await asyncio.wrap_future(future)
            return result
        except asyncio.CancelledError:
            future.cancel()  # type: ignore[no-untyped-call]  # kills a running job's worker
            raise
        except FutureTimeout:
            raise DocumentTooComplex(f"took longer than {timeout_s:g} s to read") from None
        except MemoryError:
            raise DocumentTooComplex(
                f"needs more than the {self._memory_mib} MiB of memory its reader may use"
            ) from None
        except ProcessExpired as exc:
            logger.warning("%s worker died: %s", self.name, exc)
            raise DocumentTooComplex(
                "made its reader fail (it crashed, or ran out of the "
                f"{self._memory_mib} MiB of memory it may use)"
            ) from None

    @property
    def _memory_mib(self) -> int:
        return self._memory_bytes // 2**20

    def _get_pool(self) -> ProcessPool:
        if self._pool is not None and not self._pool.active:
            self._discard_pool()
        if self._pool is None:
            self._pool = ProcessPool(
                max_workers=self._workers,
                max_tasks=JOBS_PER_WORKER,
                initializer=_limit_memory,
                initargs=(self._memory_bytes,),
                # Spawned, not forked: forking a process that runs threads can deadlock.
                context=multiprocessing.get_context("spawn"),
            )
        return self._pool

    def _discard_pool(self) -> None:
        """The next job starts a new pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stops the workers (blocks until they exit); queued jobs are cancelled."""
        pool = self._pool
        self._discard_pool()
        if pool is not None:
            pool.join(timeout=10)
