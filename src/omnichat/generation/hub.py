"""Live replies: what a running (or just finished) generation has produced, for the request
that started it, for clients re-attaching later, and for stop requests.

The in-process hub keeps a list of deltas per reply and wakes each waiting follower through its
own future, so a token costs an append and one ``set_result`` per follower; each follower has
one keep-alive timer, moved only when it fires.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from omnichat.errors import AppError, NotFound, ServiceUnavailable
from omnichat.llm.types import Usage

# Finished replies stay only for followers still reading them; later re-attaches read the database.
FINISHED_REPLY_TTL_S = 30.0
# A reply whose rows were deleted (or a request reply of a deleted account) is ended if it
# registers this long after (a delete can overtake the registration it raced with).
ABANDONED_TTL_S = 60.0
# How long ``abandon`` waits for the replies it stopped to finish (and free their slots).
ABANDON_WAIT_S = 5.0
# Why a reply made in a request ended at shutdown (a 503: the client may ask again elsewhere).
SHUTTING_DOWN = "The server is shutting down; ask again"


@dataclass(frozen=True)
class ReplyFinal:
    status: str  # complete | stopped | error
    model: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    # The documents an answer was grounded in (``rag``), as clients are shown them.
    sources: list[dict[str, Any]] | None = None
    # Why an ``error`` ended it, for clients and HTTP mapping: ``refused`` (the provider
    # declined), ``deleted`` (its conversation was deleted meanwhile); None for failures.
    code: str | None = None


@dataclass
class LiveReply:
    message_id: str
    user_id: str
    session_id: str | None
    model: str
    sources: list[dict[str, Any]] | None = None
    deltas: list[str] = field(default_factory=list)
    final: ReplyFinal | None = None
    stop_requested: bool = False
    # Set when the reply's rows were deleted: why, as its followers are told. It ends at once
    # and is not stored.
    abandoned: str | None = None
    # Set once the provider call is over and the reply is being stored: too late to stop.
    storing: bool = False
    # Set by the producing task as it starts. A task cancelled before its first step never runs
    # its body, nor its ``finally``: one not started yet is not cancelled, it reads the flags.
    started: bool = False
    finished_at: float | None = None
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    # The hub's bookkeeping of finished replies (set by ``register``).
    on_finish: Callable[[LiveReply], None] | None = None

    def text(self) -> str:
        return "".join(self.deltas)

    def interrupt(self) -> None:
        """Stops the producing task once ``stop_requested`` or ``abandoned`` is set: cancels it
        if it is running; one not started yet sees the flag when it starts; one being stored
        finishes storing."""
        if self.task is not None and self.started and not self.storing:
            self.task.cancel()

    def append(self, delta: str) -> None:
        self.deltas.append(delta)
        self._notify()

    def finish(self, final: ReplyFinal) -> None:
        self.final = final
        self.finished_at = time.monotonic()
        self._notify()
        if self.on_finish is not None:
            self.on_finish(self)

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def waiter(self) -> asyncio.Future[None]:
        """A future resolved when something new arrives."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    async def wait(self, timeout_s: float) -> None:
        """Until something new arrives or ``timeout_s`` passes."""
        waiter = self.waiter()
        timer = asyncio.get_running_loop().call_later(timeout_s, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()


class _IdleWake:
    """Wakes a follower once it has sent nothing for ``interval_s`` (a keep-alive is due).

    One timer per follower, moved only when it fires, instead of one armed and cancelled per
    token: sending a batch only records the time."""

    def __init__(self, interval_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._interval_s = interval_s
        self.waiter: asyncio.Future[None] | None = None
        self.last_sent = self._loop.time()
        self._timer = self._loop.call_at(self.last_sent + interval_s, self._fire)

    def sent(self) -> None:
        self.last_sent = self._loop.time()

    def _fire(self) -> None:
        now = self._loop.time()
        due = self.last_sent + self._interval_s
        if now < due:  # something was sent since the timer was set
            self._timer = self._loop.call_at(due, self._fire)
            return
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        self.last_sent = now  # the keep-alive the follower sends now
        self._timer = self._loop.call_at(now + self._interval_s, self._fire)

    def close(self) -> None:
        self._timer.cancel()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


FollowItem = list[str] | ReplyFinal | None  # None: nothing new within the keep-alive interval


@dataclass(eq=False)
class RequestReply:
    """A reply generated inside its own request, never stored (``/v1``, ``/api/cohere/generate``,
    ``/inference/query`` without a session). When it must end from outside (its account is
    deleted: 404; the server is shutting down: 503), ``ended`` is that error and the request's
    task is cancelled; the request then answers with the error (in-stream when streaming)."""

    user_id: str
    task: asyncio.Task[Any]
    ended: AppError | None = None

    def end(self, error: AppError) -> None:
        if self.ended is None:
            self.ended = error
            self.task.cancel()

    def take_back_cancel(self) -> bool:
        """Called on a ``CancelledError`` in the request: True when it was ``end``, which is
        then taken back so the request can still answer; False for any other cancellation
        (the client went away), which must propagate."""
        if self.ended is None:
            return False
        self.task.uncancel()
        return True


@dataclass(frozen=True)
class RemoteReply:
    """A reply another worker is producing (known through Redis)."""

    message_id: str
    user_id: str
    session_id: str | None
    model: str


Reply = LiveReply | RemoteReply


class StreamHub(Protocol):
    def register(self, reply: LiveReply) -> None: ...

    def running(self) -> list[str]:
        """Message ids of the replies this process is producing now."""
        ...

    async def find(self, message_id: str, user_id: str) -> Reply | None: ...

    def follow(self, reply: Reply, start: int, keepalive_s: float) -> AsyncIterator[FollowItem]: ...

    async def request_stop(self, message_id: str, user_id: str) -> bool: ...

    async def abandon(self, message_ids: Sequence[str], reason: str) -> None:
        """The rows of these replies were deleted: stop each at once (wherever it runs), tell
        its followers ``reason`` in an error ending, and forget it, so that re-attach and stop
        answer 404. Returns once the replies running here have ended and freed their slots."""
        ...

    async def abandon_user(self, user_id: str, reason: str) -> None:
        """The user's account was deleted: every reply of theirs, stored or in a request, on
        every worker, ends now with ``reason``."""
        ...

    def begin_request_reply(self, user_id: str) -> RequestReply:
        """Registers the current task as generating a ``RequestReply`` for the user."""
        ...

    def end_request_reply(self, reply: RequestReply) -> None: ...

    async def start(self) -> None: ...

    async def shutdown(self, grace_s: float) -> None: ...


class InProcessHub:
    def __init__(self) -> None:
        self._replies: dict[str, LiveReply] = {}
        # In the order they finished, so eviction looks only at the expired ones.
        self._finished: deque[LiveReply] = deque()
        # Replies abandoned by id, and deleted accounts by user id: (when, why), oldest first.
        self._abandoned: dict[str, tuple[float, str]] = {}
        self._abandoned_users: dict[str, tuple[float, str]] = {}
        self._in_requests: dict[str, set[RequestReply]] = {}

    def register(self, reply: LiveReply) -> None:
        self._evict_finished()
        tombstone = self._abandoned.get(reply.message_id)
        if tombstone is not None:
            reply.abandoned = tombstone[1]  # its rows were deleted before it started
            return
        reply.on_finish = self._finished.append
        self._replies[reply.message_id] = reply

    def running(self) -> list[str]:
        return [key for key, reply in self._replies.items() if reply.final is None]

    def get(self, message_id: str, user_id: str) -> LiveReply | None:
        reply = self._replies.get(message_id)
        return reply if reply is not None and reply.user_id == user_id else None

    async def find(self, message_id: str, user_id: str) -> Reply | None:
        return self.get(message_id, user_id)

    async def start(self) -> None:
        return None

    async def follow(
        self, reply: Reply, start: int, keepalive_s: float
    ) -> AsyncIterator[FollowItem]:
        assert isinstance(reply, LiveReply), "an in-process hub only knows its own replies"
        index = start
        idle = _IdleWake(keepalive_s)
        try:
            while True:
                if index < len(reply.deltas):
                    batch = reply.deltas[index:]
                    index += len(batch)
                    idle.sent()
                    yield batch
                    continue
                if reply.final is not None:
                    yield reply.final
                    return
                idle.waiter = reply.waiter()
                await idle.waiter
                if index == len(reply.deltas) and reply.final is None:
                    yield None
        finally:
            idle.close()

    async def request_stop(self, message_id: str, user_id: str) -> bool:
        reply = self.get(message_id, user_id)
        if reply is None or reply.final is not None or reply.storing:
            return False
        reply.stop_requested = True
        reply.interrupt()
        return True

    async def abandon(self, message_ids: Sequence[str], reason: str) -> None:
        now = time.monotonic()
        stopping: list[asyncio.Task[None]] = []
        for message_id in message_ids:
            self._abandoned.pop(message_id, None)  # re-inserted last: the dict stays by age
            self._abandoned[message_id] = (now, reason)
            reply = self._replies.pop(message_id, None)
            if reply is None or reply.final is not None:
                continue
            reply.abandoned = reason
            reply.interrupt()
            if reply.task is not None:
                stopping.append(reply.task)
        if stopping:
            await asyncio.wait(stopping, timeout=ABANDON_WAIT_S)

    async def abandon_user(self, user_id: str, reason: str) -> None:
        self._abandoned_users[user_id] = (time.monotonic(), reason)
        for in_request in list(self._in_requests.get(user_id, ())):
            in_request.end(NotFound(reason))
        stored = [key for key, reply in self._replies.items() if reply.user_id == user_id]
        await self.abandon(stored, reason)

    def begin_request_reply(self, user_id: str) -> RequestReply:
        task = asyncio.current_task()
        assert task is not None, "a request reply runs in its request's task"
        reply = RequestReply(user_id, task)
        self._in_requests.setdefault(user_id, set()).add(reply)
        self._evict_finished()
        tombstone = self._abandoned_users.get(user_id)
        if tombstone is not None:
            # Authenticated just before its account was deleted: it ends like the others did.
            reply.end(NotFound(tombstone[1]))
        return reply

    def end_request_reply(self, reply: RequestReply) -> None:
        replies = self._in_requests.get(reply.user_id)
        if replies is not None:
            replies.discard(reply)
            if not replies:
                del self._in_requests[reply.user_id]

    async def shutdown(self, grace_s: float) -> None:
        """Lets the replies running here (stored, or made in a request) finish for ``grace_s``,
        then ends them: a stored one is stopped and stores what it has (its streams close with
        that ending and ``[DONE]``); one in a request ends with a 503 (streamed: an in-stream
        error, then ``[DONE]``). Returns once they have ended, or 10 s after the grace. Called
        at SIGTERM, so that streams close before the server's own grace runs out, and by the
        lifespan, which then finds nothing left."""
        running = self._running_tasks()
        if running:
            await asyncio.wait(running, timeout=grace_s)
        ending = self._running_tasks()
        for reply in self._replies.values():
            if reply.task is not None:
                reply.task.cancel()
        for in_requests in list(self._in_requests.values()):
            for in_request in list(in_requests):
                in_request.end(ServiceUnavailable(SHUTTING_DOWN))
        if ending:
            await asyncio.wait(ending, timeout=10)

    def _running_tasks(self) -> list[asyncio.Task[Any]]:
        stored = [reply.task for reply in self._replies.values() if reply.task is not None]
        in_requests = [r.task for replies in self._in_requests.values() for r in replies]
        return [task for task in (*stored, *in_requests) if not task.done()]

    def _evict_finished(self) -> None:
        now = time.monotonic()
        cutoff = now - FINISHED_REPLY_TTL_S
        finished = self._finished
        while finished and (finished[0].finished_at or 0.0) < cutoff:
            reply = finished.popleft()
            if self._replies.get(reply.message_id) is reply:
                del self._replies[reply.message_id]
        for tombstones in (self._abandoned, self._abandoned_users):
            while tombstones:
                key, (when, _) = next(iter(tombstones.items()))
                if when >= now - ABANDONED_TTL_S:
                    break
                del tombstones[key]
