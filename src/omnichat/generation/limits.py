"""Per-user request rate and concurrency limits on generation. In process memory by default;
in Redis (the ``limits`` library's moving window) when ``OMNICHAT_REDIS_URL`` is set, so every
worker shares them."""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from limits import parse

from omnichat.ratelimit import MemoryRateWindow, RateWindow, TooManyRequests, rate_window

# A crashed worker must not hold a user's slot forever.
SLOT_TTL_S = 900
DEFAULT_MAX_FOLLOWERS = 20
# Followers leave when their replies end, at no predictable time.
FOLLOWER_RETRY_AFTER_S = 5


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
    def __init__(self, url: str, namespace: str = "gen-slots") -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)
        self._namespace = namespace

    async def acquire(self, user_id: str, limit: int) -> bool:
        key = f"omnichat:{self._namespace}:{user_id}"
        count = int(await self._redis.incr(key))
        await self._redis.expire(key, SLOT_TTL_S)
        if count > limit:
            await self._redis.decr(key)
            return False
        return True

    async def release(self, user_id: str) -> None:
        key = f"omnichat:{self._namespace}:{user_id}"
        if int(await self._redis.decr(key)) < 0:
            await self._redis.set(key, 0, ex=SLOT_TTL_S)


class FollowerLimit:
    """Clients re-attached at once to a user's running replies (each holds its slot until it
    leaves), capped so that one login cannot hold hundreds of streams open."""

    def __init__(self, max_per_user: int, counter: ConcurrencyCounter | None = None) -> None:
        self._max_per_user = max_per_user
        self._counter = counter or MemoryConcurrency()

    async def acquire(self, user_id: str) -> None:
        """Takes a follower slot, or raises 429 with ``Retry-After``."""
        if not await self._counter.acquire(user_id, self._max_per_user):
            raise TooManyRequests(
                f"At most {self._max_per_user} followers of running replies at once; "
                "close another stream of yours first",
                headers={"Retry-After": str(FOLLOWER_RETRY_AFTER_S)},
            )

    async def release(self, user_id: str) -> None:
        await self._counter.release(user_id)


class GenerationLimiter:
    def __init__(
        self,
        rate: str,
        max_concurrent: int,
        window: RateWindow | None = None,
        concurrency: ConcurrencyCounter | None = None,
        followers: FollowerLimit | None = None,
    ) -> None:
        self._rate = parse(rate)
        self._window = window or MemoryRateWindow(self._rate)
        self._max_concurrent = max_concurrent
        self._concurrency = concurrency or MemoryConcurrency()
        self.followers = followers or FollowerLimit(DEFAULT_MAX_FOLLOWERS)

    async def acquire(self, user_id: str) -> None:
        """Counts one request against the rate and takes a concurrency slot, or raises 429."""
        wait_s = await self._window.hit(user_id)
        if wait_s is not None:
            raise TooManyRequests.after(wait_s, f"Rate limit of {self._rate} exceeded")
        if not await self._concurrency.acquire(user_id, self._max_concurrent):
            raise TooManyRequests(
                f"At most {self._max_concurrent} replies may be generated at once",
                headers={"Retry-After": "1"},
            )

    async def release(self, user_id: str) -> None:
        await self._concurrency.release(user_id)


def build_limiter(
    rate: str,
    max_concurrent: int,
    redis_url: str | None,
    max_followers: int = DEFAULT_MAX_FOLLOWERS,
) -> GenerationLimiter:
    window = rate_window(rate, redis_url, namespace="generate")
    concurrency = RedisConcurrency(redis_url) if redis_url else MemoryConcurrency()
    follower_counter = (
        RedisConcurrency(redis_url, namespace="followers") if redis_url else MemoryConcurrency()
    )
    followers = FollowerLimit(max_followers, follower_counter)
    return GenerationLimiter(rate, max_concurrent, window, concurrency, followers)
