"""Moving-window rate limits: in process memory, or on Redis (the ``limits`` library) so that
every worker shares them."""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Protocol

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from omnichat.errors import AppError


class TooManyRequests(AppError):
    status_code = 429
    detail = "Too many requests"

    @classmethod
    def after(cls, wait_s: float, reason: str) -> TooManyRequests:
        seconds = max(1, math.ceil(wait_s))
        return cls(f"{reason}; retry in {seconds} s", headers={"Retry-After": str(seconds)})


class RateWindow(Protocol):
    async def hit(self, key: str) -> float | None:
        """Counts a request; None if allowed, else the seconds until one would be."""
        ...

    async def wait_time(self, key: str) -> float | None:
        """Like ``hit`` without counting."""
        ...


class MemoryRateWindow:
    """An exact moving window per key in process memory: O(1) amortised per hit, no timers.
    (limits' asyncio MemoryStorage hops to a thread for every stored key on every hit.)"""

    def __init__(self, rate: RateLimitItem) -> None:
        self._amount = rate.amount
        self._window_s = float(rate.get_expiry())
        self._hits: dict[str, deque[float]] = {}
        self._calls = 0

    async def hit(self, key: str) -> float | None:
        wait, hits, now = self._check(key)
        if wait is None:
            hits.append(now)
        return wait

    async def wait_time(self, key: str) -> float | None:
        return self._check(key)[0]

    def _check(self, key: str) -> tuple[float | None, deque[float], float]:
        now = time.monotonic()
        self._calls += 1
        if self._calls % 10_000 == 0:
            self._sweep(now)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self._window_s:
            hits.popleft()
        wait = hits[0] + self._window_s - now if len(hits) >= self._amount else None
        return wait, hits, now

    def _sweep(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self._window_s]:
            del self._hits[key]


class RedisRateWindow:
    """The moving window of the ``limits`` library on Redis, shared by every worker."""

    def __init__(self, rate: RateLimitItem, storage: Storage, *, namespace: str) -> None:
        self._rate = rate
        self._limiter = MovingWindowRateLimiter(storage)
        self._namespace = namespace

    async def hit(self, key: str) -> float | None:
        if await self._limiter.hit(self._rate, self._namespace, key):
            return None
        return await self._reset_in(key)

    async def wait_time(self, key: str) -> float | None:
        if await self._limiter.test(self._rate, self._namespace, key):
            return None
        return await self._reset_in(key)

    async def _reset_in(self, key: str) -> float:
        stats = await self._limiter.get_window_stats(self._rate, self._namespace, key)
        return float(stats.reset_time - time.time())


def redis_rate_storage(redis_url: str) -> Storage:
    storage_url = redis_url.replace("redis://", "async+redis://", 1).replace(
        "rediss://", "async+rediss://", 1
    )
    return RedisStorage(storage_url, implementation="redispy", key_prefix="omnichat:limits")


def rate_window(rate: str, redis_url: str | None, *, namespace: str) -> RateWindow:
    """In memory, or on Redis when configured (shared by every worker)."""
    item = parse(rate)
    if redis_url:
        return RedisRateWindow(item, redis_rate_storage(redis_url), namespace=namespace)
    return MemoryRateWindow(item)
