"""Per-user request rate and concurrency limits on generation. In process memory by default;
in Redis (the ``limits`` library's moving window) when ``OMNICHAT_REDIS_URL`` is set, so every
worker shares them."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from typing import Protocol

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from omnichat.errors import AppError

# A crashed worker must not hold a user's slot forever.
SLOT_TTL_S = 900


class TooManyRequests(AppError):
    status_code = 429
    detail = "Too many requests"


class ConcurrencyCounter(Protocol):
    async def acquire(self, user_id: str, limit: int) -> bool: ...

    async def release(self, user_id: str) -> None: ...


class MemoryConcurrency:
    def __init__(self) -> None:
        self._active: dict[str, int] = defaultdict(int)

    async def acquire(self, user_id: str, limit: int) -> bool:
        if self._active[user_id] >= limit:
            return False
        self._active[user_id] += 1
        return True

    async def release(self, user_id: str) -> None:
        self._active[user_id] = max(0, self._active[user_id] - 1)
        if not self._active[user_id]:
            del self._active[user_id]


class RedisConcurrency:
    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)

    async def acquire(self, user_id: str, limit: int) -> bool:
        key = f"omnichat:gen-slots:{user_id}"
        count = int(await self._redis.incr(key))
        await self._redis.expire(key, SLOT_TTL_S)
        if count > limit:
            await self._redis.decr(key)
            return False
        return True

    async def release(self, user_id: str) -> None:
        key = f"omnichat:gen-slots:{user_id}"
        if int(await self._redis.decr(key)) < 0:
            await self._redis.set(key, 0, ex=SLOT_TTL_S)


class RateWindow(Protocol):
    async def hit(self, user_id: str) -> float | None:
        """Counts a request; None if allowed, else the seconds until one would be."""
        ...


class MemoryRateWindow:
    """An exact moving window per user in process memory: O(1) amortised per hit, no timers.
    (limits' asyncio MemoryStorage hops to a thread for every stored key on every hit.)"""

    def __init__(self, rate: RateLimitItem) -> None:
        self._amount = rate.amount
        self._window_s = float(rate.get_expiry())
        self._hits: dict[str, deque[float]] = {}
        self._calls = 0

    async def hit(self, user_id: str) -> float | None:
        now = time.monotonic()
        self._calls += 1
        if self._calls % 10_000 == 0:
            self._sweep(now)
        hits = self._hits.setdefault(user_id, deque())
        while hits and hits[0] <= now - self._window_s:
            hits.popleft()
        if len(hits) >= self._amount:
            return hits[0] + self._window_s - now
        hits.append(now)
        return None

    def _sweep(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self._window_s]:
            del self._hits[key]


class RedisRateWindow:
    """The moving window of the ``limits`` library on Redis, shared by every worker."""

    def __init__(self, rate: RateLimitItem, storage: Storage) -> None:
        self._rate = rate
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, user_id: str) -> float | None:
        if await self._limiter.hit(self._rate, "generate", user_id):
            return None
        stats = await self._limiter.get_window_stats(self._rate, "generate", user_id)
        return stats.reset_time - time.time()


class GenerationLimiter:
    def __init__(
        self,
        rate: str,
        max_concurrent: int,
        window: RateWindow | None = None,
        concurrency: ConcurrencyCounter | None = None,
    ) -> None:
        self._rate = parse(rate)
        self._window = window or MemoryRateWindow(self._rate)
        self._max_concurrent = max_concurrent
        self._concurrency = concurrency or MemoryConcurrency()

    async def acquire(self, user_id: str) -> None:
        """Counts one request against the rate and takes a concurrency slot, or raises 429."""
        wait_s = await self._window.hit(user_id)
        if wait_s is not None:
            retry_after = max(1, math.ceil(wait_s))
            raise TooManyRequests(
                f"Rate limit of {self._rate} exceeded; retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
        if not await self._concurrency.acquire(user_id, self._max_concurrent):
            raise TooManyRequests(
                f"At most {self._max_concurrent} replies may be generated at once",
                headers={"Retry-After": "1"},
            )

    async def release(self, user_id: str) -> None:
        await self._concurrency.release(user_id)


def build_limiter(rate: str, max_concurrent: int, redis_url: str | None) -> GenerationLimiter:
    if not redis_url:
        return GenerationLimiter(rate, max_concurrent)
    from limits.aio.storage import RedisStorage

    storage_url = redis_url.replace("redis://", "async+redis://", 1).replace(
        "rediss://", "async+rediss://", 1
    )
    storage = RedisStorage(storage_url, implementation="redispy", key_prefix="omnichat:limits")
    return GenerationLimiter(
        rate, max_concurrent, RedisRateWindow(parse(rate), storage), RedisConcurrency(redis_url)
    )
