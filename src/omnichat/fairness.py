"""Sharing a scarce resource fairly between users: ``FairSlots``."""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairSlots:
    """At most ``capacity`` holders at once, and at most ``per_owner`` of them one owner's.
    Waiters are served round robin across owners (first come, first served within one), so
    one owner's hundred jobs cost another owner's single job one turn, not the whole queue.

        async with slots.slot(user_id):
            ...  # the work
    """

    def __init__(self, capacity: int, per_owner: int | None = None) -> None:
        self.capacity = capacity
        self.per_owner = min(per_owner or capacity, capacity)
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._held: Counter[str] = Counter()

    @asynccontextmanager
    async def slot(self, owner: str) -> AsyncIterator[None]:
        granted = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(owner, deque()).append(granted)
        self._grant()
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release(owner)  # granted just as the waiter was cancelled
            else:
                self._forget(owner, granted)
            raise
        try:
            yield
        finally:
            self._release(owner)

    @property
    def held(self) -> int:
        return self._held.total()

    def _grant(self) -> None:
        """One slot per owner in turn, round after round, while any is free."""
        progress = True
        while progress:
            progress = False
            for owner in list(self._waiting):
                if self._held.total() >= self.capacity:
                    return
                if self._held[owner] >= self.per_owner:
                    continue  # keeps its place in the turn
                waiters = self._waiting.pop(owner)
                while waiters:
                    granted = waiters.popleft()
                    if not granted.done():  # a cancelled waiter is skipped
                        granted.set_result(None)
                        self._held[owner] += 1
                        progress = True
                        break
                if waiters:
                    self._waiting[owner] = waiters  # to the back of the turn

    def _release(self, owner: str) -> None:
        self._held[owner] -= 1
        if self._held[owner] <= 0:
            del self._held[owner]
        self._grant()

    def _forget(self, owner: str, granted: asyncio.Future[None]) -> None:
        waiters = self._waiting.get(owner)
        if waiters is not None:
            if granted in waiters:
                waiters.remove(granted)
            if not waiters:
                del self._waiting[owner]
