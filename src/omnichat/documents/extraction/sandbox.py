"""Parsing untrusted files in worker processes that may be killed, scheduled fairly per user.

Every job runs in a pebble ``ProcessPool`` worker whose address space is capped
(``RLIMIT_AS``): a file that makes its parser allocate past the cap fails there with a
``MemoryError`` (or the worker dies), never in the server. A job that runs past its time limit
has its worker killed and replaced. Either way the caller gets ``DocumentTooComplex`` (422). A
worker killed from outside mid-job (SIGKILL, SIGTERM: the OOM killer, an operator) says nothing
about the file: the job is tried once more in a fresh worker, and only a second kill is a 422.
One that dies while idle is logged (a warning naming the pool, its pid and the signal or exit
code) and replaced.

A worker that ends a job holding much of its cap (allocators keep what a large document made
them reserve) retires, and is replaced, before it takes another job; a job that ran out of memory
in a worker that had parsed other files first is tried once more in another, so one user's large
file never makes the next user's ordinary one fail.

Jobs wait in one queue per owner and are handed to free workers round robin, and no owner
holds every worker at once (with two or more), so one user's heavy uploads cost another
user's one-page upload a share of the CPU, not a wait behind them. Cancelling the
caller (a deleted document) withdraws a queued job and kills a running one.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import multiprocessing
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import SpawnContext
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessPool
from pebble.pool.process import PoolManager

from omnichat.documents.extraction.errors import (
    DocumentTooComplex,
    UnreadableDocument,
    ran_out_of_memory,
)
from omnichat.errors import AppError, ServiceUnavailable
from omnichat.fairness import FairSlots

logger = logging.getLogger("omnichat.documents.sandbox")
T = TypeVar("T")
# A worker is replaced after this many jobs: whatever a parser leaks does not pile up.
JOBS_PER_WORKER = 50


# A worker whose address space grew, over a job, by more than this share of the room its cap
# leaves beyond what it spans idle retires.
RETIRE_AFTER_GROWTH_SHARE = 0.5


# A worker ended by one of these was stopped from outside (the OOM killer, an operator, a
# supervisor) rather than by the file: its job is tried once more before the file is blamed.
OUTSIDE_STOP_SIGNALS = frozenset({-signal.SIGKILL, -signal.SIGTERM})


class WorkerStoppedFromOutside(Exception):
    """The worker running a job was killed by a signal from outside (``OUTSIDE_STOP_SIGNALS``)."""


class RetryOnFreshWorker(Exception):
    """Raised in a worker that ran out of memory after parsing other files first: what they
    left behind may be why, so the server tries the job once more in another worker."""


class _Worker:
    """The state of the worker process this module runs in (one per spawned process)."""

    cap_bytes = 0
    idle_bytes = 0  # its address space once started, with its modules loaded
    jobs = 0
    retiring = False


def _call_in_worker(function: Callable[..., T], args: tuple[Any, ...]) -> T:
    """Runs ``function`` in the worker. What it raises must travel back to the server: an
    ``AppError`` as it is; running out of memory (also when a parser reported it as a corrupt
    file) as ``MemoryError``, or ``RetryOnFreshWorker`` if earlier jobs may be to blame; anything
    else (a parser's own exception, which may hold objects that cannot be pickled, such as lxml's
    error log) as ``UnreadableDocument``."""
    _Worker.jobs += 1
    try:
        return function(*args)
    except Exception as exc:
        if ran_out_of_memory(exc):
            _Worker.retiring = True
            if _Worker.jobs > 1:
                raise RetryOnFreshWorker() from None
            raise MemoryError() from None
        if isinstance(exc, AppError):
            raise
        logger.info("parser failed: %s: %s", type(exc).__name__, exc)
        raise UnreadableDocument(
            f"The file could not be read: its reader failed ({type(exc).__name__})"
        ) from None
    finally:
        _release_memory()


def _release_memory() -> None:
    """Hands what the job freed back to the system, and retires the worker if it still spans
    much more than it did idle (``RETIRE_AFTER_GROWTH_SHARE``)."""
    gc.collect()
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):  # glibc only
            libc.malloc_trim(0)
    room = _Worker.cap_bytes - _Worker.idle_bytes
    if _address_space_bytes() - _Worker.idle_bytes > RETIRE_AFTER_GROWTH_SHARE * room:
        _Worker.retiring = True


def _address_space_bytes() -> int:
    """This process's address space (what ``RLIMIT_AS`` caps), from ``/proc/self/statm``; 0
    where there is no procfs."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * resource.getpagesize()


def _start_worker(max_bytes: int, warm_up: Callable[[], object] | None) -> None:
    """Runs in each new worker before its first job: ``warm_up()`` loads what every job needs
    (parsers, an OCR engine), so a worker is ready before a job comes and its idle size counts
    them; then caps its memory and lets it retire.

    A pebble worker takes jobs until ``max_tasks``; this wraps pebble's task loop (looked up by
    ``process_tasks`` at call time) so that it also stops, before fetching another job, once
    ``_Worker.retiring`` is set. A worker that stops this way exits with 0, which pebble treats
    as an ordinary retirement and replaces. ``tests/test_parse_limits.py`` checks that it still
    does."""
    if warm_up is not None:
        warm_up()
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    _Worker.cap_bytes = max_bytes
    _Worker.idle_bytes = _address_space_bytes()
    from pebble.pool import process as pebble_process

    next_tasks = pebble_process.worker_get_next_task

    def tasks_until_retired(channel: Any, max_tasks: int) -> Iterator[Any]:
        for task in next_tasks(channel, max_tasks):
            yield task
            if _Worker.retiring:
                return

    pebble_process.worker_get_next_task = tasks_until_retired


def _how_it_ended(exitcode: int | None) -> str:
    """``exitcode`` of a process (negative: the signal that ended it) in words."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class _WatchedPoolManager(PoolManager):
    """pebble's pool manager, which also logs a worker that died running no job (killed while
    idle by the OOM killer or an operator, or dead before it could take one): pebble itself
    says nothing, and breaks the pool when no job is running (the next job then starts a new
    one). Called from pebble's manager thread within a tick (0.1 s) of the death, before any
    job can run on the replacement; ``handle_worker_expiration`` is pebble's hook for every
    worker that ended with a non-zero exit code and was not stopped by pebble itself (a job's
    timeout or cancellation)."""

    def __init__(self, name: str, pool: ProcessPool, context: SpawnContext) -> None:
        super().__init__(pool._context, context)
        self.pool_name = name

    def handle_worker_expiration(self, expiration: tuple[int, int | None]) -> None:
        worker_id, exitcode = expiration
        try:
            self.find_expired_task(worker_id)
        except (LookupError, BrokenProcessPool):
            logger.warning(
                "%s worker (pid %d) died while idle: %s",
                self.pool_name,
                worker_id,
                _how_it_ended(exitcode),
            )
        super().handle_worker_expiration(expiration)


def _process_pool(
    name: str, workers: int, memory_bytes: int, warm_up: Callable[[], object] | None
) -> ProcessPool:
    # Spawned, not forked: forking a process that runs threads can deadlock.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPool(
        max_workers=workers,
        max_tasks=JOBS_PER_WORKER,
        initializer=_start_worker,
        initargs=(memory_bytes, warm_up),
        context=context,
    )
    # Before the pool starts (at its first job), so its threads run the watched manager.
    pool._pool_manager = _WatchedPoolManager(name, pool, context)
    return pool


class SandboxPool:
    """``await pool.run(owner, function, *args, timeout_s=...)``: ``function(*args)`` in a
    capped worker, on ``owner``'s turn. ``function`` and its arguments must pickle; its
    exceptions come back as they were raised (an ``AppError`` stays one)."""

    def __init__(
        self,
        name: str,
        workers: int,
        memory_bytes: int,
        warm_up: Callable[[], object] | None = None,
    ) -> None:
        self.name = name
        self._warm_up = warm_up
        # One owner never holds every worker: with two or more, one is always left for the
        # others' jobs, whatever one user has queued.
        self._slots = FairSlots(workers, per_owner=max(1, workers - 1))
        self._workers = workers
        self._memory_bytes = memory_bytes
        self._pool: ProcessPool | None = None
        # Pools being stopped after they broke (``_discard_pool``); ``close`` waits for them.
        self._stopping: list[threading.Thread] = []

    async def run(self, owner: str, function: Callable[..., T], *args: Any, timeout_s: float) -> T:
        async with self._slots.slot(owner):
            pool_restarted = retried_for_memory = retried_after_kill = False
            while True:
                try:
                    return await self._run_once(function, args, timeout_s)
                except RetryOnFreshWorker:
                    if retried_for_memory:
                        raise self._out_of_memory() from None
                    retried_for_memory = True
                    logger.info("%s job ran out of memory in a used worker; retrying", self.name)
                except WorkerStoppedFromOutside:
                    if retried_after_kill:
                        raise DocumentTooComplex(
                            "was being read when its reader was killed twice (it may need more "
                            f"than the memory this server has: {self._memory_mib} MiB per reader)"
                        ) from None
                    retried_after_kill = True
                except (BrokenProcessPool, RuntimeError) as exc:
                    # The pool itself broke (a worker killed while idle, by the OOM killer or
                    # an operator; workers that cannot start): the job never ran, and it is
                    # not the file's fault. A new pool gets one more try.
                    logger.error("%s pool broke: %r", self.name, exc)
                    self._discard_pool()
                    if pool_restarted:
                        raise ServiceUnavailable(
                            "The document reader could not start its worker processes; "
                            "try again later"
                        ) from None
                    pool_restarted = True

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
            raise self._out_of_memory() from None
        except ProcessExpired as exc:
            if exc.exitcode in OUTSIDE_STOP_SIGNALS:
                logger.warning(
                    "%s worker was killed from outside mid-job (signal %d); trying it again",
                    self.name,
                    -exc.exitcode,
                )
                raise WorkerStoppedFromOutside() from None
            logger.warning("%s worker died: %s", self.name, exc)
            raise DocumentTooComplex(
                "made its reader fail (it crashed, or ran out of the "
                f"{self._memory_mib} MiB of memory it may use)"
            ) from None

    def _out_of_memory(self) -> DocumentTooComplex:
        return DocumentTooComplex(
            f"needs more than the {self._memory_mib} MiB of memory its reader may use"
        )

    @property
    def _memory_mib(self) -> int:
        return self._memory_bytes // 2**20

    def _get_pool(self) -> ProcessPool:
        if self._pool is not None and not self._pool.active:
            self._discard_pool()
        if self._pool is None:
            self._pool = _process_pool(self.name, self._workers, self._memory_bytes, self._warm_up)
        return self._pool

    def _discard_pool(self) -> None:
        """The next job starts a new pool. The old one is stopped and joined in a thread, off
        the event loop: its workers stopped, its channel closed, and with it the two named
        semaphores the channel holds. (A pool only stopped keeps them until it is garbage
        collected, which a server ended by the SIGTERM uvicorn re-raises never does: the
        resource tracker then reports them as leaked.)"""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]
            stopping = threading.Thread(
                target=pool.join, name=f"{self.name}-pool-stop", daemon=True
            )
            stopping.start()
            self._stopping = [*(t for t in self._stopping if t.is_alive()), stopping]

    def close(self) -> None:
        """Stops the workers and closes the pools' channels (blocks until they have, at most
        ~10 s a pool); queued jobs are cancelled."""
        self._discard_pool()
        for stopping in self._stopping:
            stopping.join(timeout=10)
        self._stopping = []
