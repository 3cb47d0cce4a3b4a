"""The in-process hub (one module, no server): how long finished replies stay, and followers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from omnichat.errors import NotFound
from omnichat.generation import hub as hub_module
from omnichat.generation.hub import (
    FINISHED_REPLY_TTL_S,
    InProcessHub,
    LiveReply,
    ReplyFinal,
    RequestReply,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(hub_module.time, "monotonic", fake.monotonic)
    return fake


def reply(message_id: str, user_id: str = "u1") -> LiveReply:
    return LiveReply(message_id=message_id, user_id=user_id, session_id="s1", model="local:echo")


def test_finished_replies_leave_after_the_ttl_and_running_ones_stay(clock: Clock) -> None:
    hub = InProcessHub()
    first, running, second = reply("m1"), reply("m2"), reply("m3")
    for item in (first, running, second):
        hub.register(item)
    first.finish(ReplyFinal("complete", "local:echo"))
    clock.now += 10
    second.finish(ReplyFinal("stopped", "local:echo"))

    clock.now += FINISHED_REPLY_TTL_S - 5  # first expired, second not yet
    hub.register(reply("m4"))
    assert hub.get("m1", "u1") is None
    assert hub.get("m3", "u1") is second
    assert hub.get("m2", "u1") is running

    clock.now += 10
    hub.register(reply("m5"))
    assert hub.get("m3", "u1") is None
    assert hub.get("m2", "u1") is running  # still running: never evicted, however old
    assert sorted(hub.running()) == ["m2", "m4", "m5"]


def test_a_reply_is_only_found_by_its_owner(clock: Clock) -> None:
    hub = InProcessHub()
    hub.register(reply("m1", user_id="alice"))
    assert hub.get("m1", "alice") is not None
    assert hub.get("m1", "bob") is None


async def test_followers_get_batches_then_the_final_and_keepalives_while_idle() -> None:
    hub = InProcessHub()
    live = reply("m1")
    hub.register(live)
    live.append("a")
    seen: list[object] = []

    async def follow() -> None:
        async for item in hub.follow(live, 0, keepalive_s=0.05):
            seen.append(item)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.12)  # idle: keep-alives (None)
    live.append("b")
    live.append("c")
    live.finish(ReplyFinal("complete", "local:echo"))
    await asyncio.wait_for(follower, 5)
    assert seen[0] == ["a"]
    assert None in seen
    texts = [x for item in seen if isinstance(item, list) for x in item]
    assert texts == ["a", "b", "c"]
    assert isinstance(seen[-1], ReplyFinal)


async def test_a_follower_sent_tokens_gets_no_keepalive_and_an_idle_one_gets_one_per_interval() -> (
    None
):
    hub = InProcessHub()
    live = reply("m1")
    hub.register(live)
    seen: list[object] = []

    async def follow() -> None:
        async for item in hub.follow(live, 0, keepalive_s=0.5):
            seen.append(item)

    follower = asyncio.create_task(follow())
    for index in range(50):  # a token every 20 ms for a second: never idle for 0.5 s
        live.append(str(index))
        await asyncio.sleep(0.02)
    assert None not in seen
    await asyncio.sleep(1.25)  # idle: keep-alives after 0.5 s and 1.0 s
    live.finish(ReplyFinal("complete", "local:echo"))
    await asyncio.wait_for(follower, 5)
    assert seen.count(None) == 2
    texts = [x for item in seen if isinstance(item, list) for x in item]
    assert texts == [str(index) for index in range(50)]


async def test_abandon_forgets_the_reply_and_cancels_its_task() -> None:
    hub = InProcessHub()
    live, other = reply("m1"), reply("m2")
    for item in (live, other):
        hub.register(item)
    started = asyncio.Event()

    async def produce() -> None:
        live.started = True  # as GenerationService._run does first
        started.set()
        await asyncio.sleep(60)

    live.task = asyncio.create_task(produce())
    await started.wait()
    await hub.abandon(["m1", "never-ran"], "gone")
    assert live.task.cancelled()
    assert live.abandoned == "gone"
    assert hub.get("m1", "u1") is None  # re-attach and stop find nothing
    assert hub.get("m2", "u1") is other
    assert other.abandoned is None
    assert hub.running() == ["m2"]


async def test_a_reply_already_being_stored_is_not_cancelled_but_learns_why() -> None:
    hub = InProcessHub()
    live = reply("m1")
    hub.register(live)
    release = asyncio.Event()

    async def store() -> None:
        await release.wait()

    live.storing = True
    live.task = asyncio.create_task(store())
    abandoning = asyncio.create_task(hub.abandon(["m1"], "gone"))
    await asyncio.sleep(0.01)
    assert not live.task.cancelled()
    assert live.abandoned == "gone"
    release.set()
    await abandoning  # returns once the task has ended
    assert live.task.done()
    assert not live.task.cancelled()


def test_a_reply_registered_after_its_rows_were_deleted_is_abandoned_at_once(
    clock: Clock,
) -> None:
    """Another worker's delete can overtake the registration it raced with."""
    hub = InProcessHub()
    asyncio.run(hub.abandon(["late"], "gone"))
    late = reply("late")
    hub.register(late)
    assert late.abandoned == "gone"
    assert hub.get("late", "u1") is None
    clock.now += hub_module.ABANDONED_TTL_S + 1
    hub.register(reply("x"))  # the tombstone expires
    again = reply("late")
    hub.register(again)
    assert again.abandoned is None


def test_a_request_reply_begun_after_its_account_was_deleted_ends_at_once(clock: Clock) -> None:
    """A request authenticated just before its account was deleted registers after the delete
    ended the others: it ends the same way, with the same reason (a 404), while the tombstone
    lasts; another user's is untouched."""
    hub = InProcessHub()

    async def begin(user_id: str) -> RequestReply:
        begun = hub.begin_request_reply(user_id)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)  # a cancel lands here
        return begun

    asyncio.run(hub.abandon_user("u1", "The account was deleted"))
    late = asyncio.run(begin("u1"))
    assert isinstance(late.ended, NotFound)
    assert late.ended.detail == "The account was deleted"
    assert asyncio.run(begin("u2")).ended is None
    clock.now += hub_module.ABANDONED_TTL_S + 1
    assert asyncio.run(begin("u1")).ended is None  # the tombstone expires
