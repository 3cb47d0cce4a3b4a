"""``FairSlots``: round robin across owners, a cap per owner, cancellation that leaks nothing."""

from __future__ import annotations

import asyncio

import pytest

from omnichat.fairness import FairSlots


async def _hold(slots: FairSlots, owner: str, order: list[str], release: asyncio.Event) -> None:
    async with slots.slot(owner):
        order.append(owner)
        await release.wait()


async def test_waiters_are_served_round_robin_across_owners() -> None:
    slots = FairSlots(1)
    order: list[str] = []
    gate = asyncio.Event()
    first = asyncio.create_task(_hold(slots, "a", order, gate))
    await asyncio.sleep(0)
    # "a" queues ten more jobs before "b" and "c" queue one each.
    events = [asyncio.Event() for _ in range(12)]
    tasks = [asyncio.create_task(_hold(slots, "a", order, events[i])) for i in range(10)]
    tasks.append(asyncio.create_task(_hold(slots, "b", order, events[10])))
    tasks.append(asyncio.create_task(_hold(slots, "c", order, events[11])))
    await asyncio.sleep(0)
    gate.set()
    for event in events:
        event.set()
    await asyncio.gather(first, *tasks)
    assert order[:4] == ["a", "a", "b", "c"]  # b and c each waited one turn, not ten
    assert order.count("a") == 11


async def test_one_owner_never_holds_every_slot() -> None:
    slots = FairSlots(2, per_owner=1)
    order: list[str] = []
    gate = asyncio.Event()
    tasks = [asyncio.create_task(_hold(slots, "a", order, gate)) for _ in range(3)]
    await asyncio.sleep(0)
    assert slots.held == 1  # the second slot stays free for someone else
    late = asyncio.create_task(_hold(slots, "b", order, gate))
    await asyncio.sleep(0)
    assert order == ["a", "b"]
    gate.set()
    await asyncio.gather(*tasks, late)
    assert slots.held == 0


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    slots = FairSlots(1)
    order: list[str] = []
    gate, other = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold(slots, "a", order, gate))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(_hold(slots, "b", order, other))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.set()
    await holder
    assert slots.held == 0
    third = asyncio.create_task(_hold(slots, "c", order, other))
    other.set()
    await third
    assert order == ["a", "c"]
    assert slots.held == 0
