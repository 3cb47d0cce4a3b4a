"""Live replies shared through Redis, so any worker can re-attach to or stop a reply that
another worker is producing (``OMNICHAT_REDIS_URL``).

The producing worker keeps its reply in process (its own followers read it there, at no cost)
and mirrors it to a Redis stream in batches: ``d`` entries carry a JSON list of deltas, one ``f``
entry the final state. Other workers replay the stream with XRANGE/XREAD. Stop requests travel on
a pub/sub channel to whichever worker owns the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import asdict
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from omnichat.errors import ServiceUnavailable
from omnichat.generation.hub import (
    ABANDON_WAIT_S,
    FollowItem,
    InProcessHub,
    LiveReply,
    RemoteReply,
    Reply,
    ReplyFinal,
    RequestReply,
)
from omnichat.llm.types import Usage

logger = logging.getLogger("omnichat.generation.redis")
STOP_CHANNEL = "omnichat:stop"
# Replies to end at once, on whichever worker runs them: {"reason": ..., and "messages":
# [message_id, ...] (their rows were deleted) or "user": user_id (the account was deleted)}.
ABANDON_CHANNEL = "omnichat:abandon"
ABANDON_POLL_S = 0.05
# Kept after the reply ends for late re-attaches (the database has it for good).
REPLY_TTL_S = 900
MIRROR_IDLE_WAKE_S = 5.0


def _stream_key(message_id: str) -> str:
    return f"omnichat:reply:{message_id}"


def _meta_key(message_id: str) -> str:
    return f"omnichat:reply:{message_id}:meta"


def _final_from(raw: bytes) -> ReplyFinal:
    data = json.loads(raw)
    data["usage"] = Usage(**data.get("usage") or {})
    return ReplyFinal(**data)


class RedisHub:
    def __init__(self, url: str) -> None:
        self._redis = Redis.from_url(url)
        self._local = InProcessHub()
        self._background: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen_for_stops())

    def register(self, reply: LiveReply) -> None:
        self._local.register(reply)
        self._spawn(self._mirror(reply))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def running(self) -> list[str]:
        return self._local.running()

    async def find(self, message_id: str, user_id: str) -> Reply | None:
        local = self._local.get(message_id, user_id)
        if local is not None:
            return local
        try:
            meta: dict[Any, Any] = await self._redis.hgetall(_meta_key(message_id))
        except RedisError as exc:
            raise ServiceUnavailable("Live replies are unavailable (Redis)") from exc
        if not meta or meta.get(b"user_id", b"").decode() != user_id or b"deleted" in meta:
            return None
        session_id = meta.get(b"session_id", b"").decode() or None
        return RemoteReply(message_id, user_id, session_id, meta.get(b"model", b"").decode())

    async def follow(
        self, reply: Reply, start: int, keepalive_s: float
    ) -> AsyncIterator[FollowItem]:
        if isinstance(reply, LiveReply):
            async for item in self._local.follow(reply, start, keepalive_s):
                yield item
            return
        key = _stream_key(reply.message_id)
        last_id = "0-0"
        while True:
            try:
                answer: Any = await self._redis.xread(
                    {key: last_id}, count=1000, block=int(keepalive_s * 1000)
                )
            except RedisError as exc:
                raise ServiceUnavailable("Live replies are unavailable (Redis)") from exc
            if not answer:
                yield None
                continue
            for entry_id, fields in answer[0][1]:
                last_id = entry_id
                if b"d" in fields:
                    yield list(json.loads(fields[b"d"]))
                elif b"f" in fields:
                    yield _final_from(fields[b"f"])
                    return

    async def request_stop(self, message_id: str, user_id: str) -> bool:
        if await self._local.request_stop(message_id, user_id):
            return True
        reply = await self.find(message_id, user_id)
        if reply is None:
            return False
        try:
            if await self._redis.hget(_meta_key(message_id), "done"):
                return False
            await self._redis.publish(STOP_CHANNEL, json.dumps([message_id, user_id]))
        except RedisError as exc:
            raise ServiceUnavailable("Live replies are unavailable (Redis)") from exc
        return True

    async def abandon(self, message_ids: Sequence[str], reason: str) -> None:
        """Stops the replies here, tells the other workers to stop theirs, and marks every one
        deleted (no worker re-attaches to it any more); then waits, up to ABANDON_WAIT_S, until
        the other workers have ended theirs, so that the user's slots are free on return."""
        await self._local.abandon(message_ids, reason)
        if not message_ids:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for message_id in message_ids:
                    pipe.hset(_meta_key(message_id), "deleted", "1")
                    pipe.expire(_meta_key(message_id), REPLY_TTL_S)
                pipe.publish(
                    ABANDON_CHANNEL, json.dumps({"messages": list(message_ids), "reason": reason})
                )
                await pipe.execute()
            await self._wait_done(message_ids)
        except RedisError as exc:
            raise ServiceUnavailable("Live replies are unavailable (Redis)") from exc

    async def abandon_user(self, user_id: str, reason: str) -> None:
        await self._local.abandon_user(user_id, reason)
        try:
            await self._redis.publish(
                ABANDON_CHANNEL, json.dumps({"user": user_id, "reason": reason})
            )
        except RedisError as exc:
            raise ServiceUnavailable("Live replies are unavailable (Redis)") from exc

    def begin_request_reply(self, user_id: str) -> RequestReply:
        return self._local.begin_request_reply(user_id)

    def end_request_reply(self, reply: RequestReply) -> None:
        self._local.end_request_reply(reply)

    async def _abandon_here(self, order: dict[str, Any]) -> None:
        """Another worker's abandon order, for the replies of this one."""
        if "user" in order:
            await self._local.abandon_user(str(order["user"]), str(order["reason"]))
        else:
            await self._local.abandon(list(order["messages"]), str(order["reason"]))

    async def _wait_done(self, message_ids: Sequence[str]) -> None:
        """Until each reply another worker was producing has its final entry."""
        waiting = list(message_ids)
        deadline = asyncio.get_running_loop().time() + ABANDON_WAIT_S
        while waiting and asyncio.get_running_loop().time() < deadline:
            async with self._redis.pipeline(transaction=False) as pipe:
                for message_id in waiting:
                    pipe.hget(_meta_key(message_id), "model")
                    pipe.hget(_meta_key(message_id), "done")
                answers = await pipe.execute()
            # Still running: started by some worker (it has a model) and not done.
            waiting = [
                message_id
                for message_id, model, done in zip(
                    waiting, answers[::2], answers[1::2], strict=True
                )
                if model is not None and done is None
            ]
            if waiting:
                await asyncio.sleep(ABANDON_POLL_S)

    async def shutdown(self, grace_s: float) -> None:
        await self._local.shutdown(grace_s)
        if self._background:
            await asyncio.wait(self._background, timeout=10)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()

    async def _mirror(self, reply: LiveReply) -> None:
        """Copies the reply to Redis in batches; a Redis outage costs re-attach from other
        workers, never the reply itself (it is still streamed locally and stored)."""
        key, meta = _stream_key(reply.message_id), _meta_key(reply.message_id)
        index = 0
        try:
            await self._redis.hset(
                meta,
                mapping={
                    "user_id": reply.user_id,
                    "session_id": reply.session_id or "",
                    "model": reply.model,
                },
            )
            await self._redis.expire(meta, REPLY_TTL_S)
            while True:
                if index < len(reply.deltas):
                    batch = reply.deltas[index:]
                    index += len(batch)
                    await self._redis.xadd(key, {"d": json.dumps(batch)})
                    continue
                if reply.final is not None:
                    final: dict[str, Any] = asdict(reply.final)
                    async with self._redis.pipeline(transaction=True) as pipe:
                        pipe.xadd(key, {"f": json.dumps(final)})
                        pipe.hset(meta, "done", "1")
                        pipe.expire(key, REPLY_TTL_S)
                        pipe.expire(meta, REPLY_TTL_S)
                        await pipe.execute()
                    return
                await reply.wait(MIRROR_IDLE_WAKE_S)
        except RedisError:
            logger.warning(
                "mirroring a reply to Redis failed", extra={"message_id": reply.message_id}
            )

    async def _listen_for_stops(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(STOP_CHANNEL, ABANDON_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    if message.get("channel") == ABANDON_CHANNEL.encode():
                        # Not awaited here: the listener must go on reading.
                        self._spawn(self._abandon_here(json.loads(message["data"])))
                        continue
                    message_id, user_id = json.loads(message["data"])
                    await self._local.request_stop(message_id, user_id)
            except asyncio.CancelledError:
                raise
            except (RedisError, ValueError):
                logger.warning("stop channel lost; resubscribing")
                await asyncio.sleep(1)
