"""Two workers (separate event loops and hubs) on one database, one Redis and the fake
providers: a reply started on one is re-attached to and stopped from the other, and the
per-user limits are shared."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from omnichat.app import create_app
from omnichat.settings import Settings
from tests.conftest import PASSWORD, ThreadedServer, register_user
from tests.fakes import FakeProviderServer, Reply
from tests.sse import assert_unreachable, open_chat_stream, stream_sse
from tests.test_generation import _messages, _session

TOKENS = [f" w{i}" for i in range(20)]
RATE = 4


@pytest.fixture(scope="module")
def workers(
    llm_settings: Settings, redis_url: str
) -> Iterator[tuple[ThreadedServer, ThreadedServer]]:
    settings = llm_settings.model_copy(
        update={"redis_url": redis_url, "generation_rate_limit": f"{RATE}/minute"}
    )
    with (
        ThreadedServer(create_app(settings)) as first,
        ThreadedServer(create_app(settings)) as second,
    ):
        yield first, second


@pytest.fixture
async def clients(
    workers: tuple[ThreadedServer, ThreadedServer], fake_provider: FakeProviderServer
) -> Any:
    first, second = workers
    async with (
        httpx.AsyncClient(base_url=first.base_url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.base_url, timeout=30) as b,
    ):
        yield a, b


async def test_reattach_and_stop_from_another_worker(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], fake_provider: FakeProviderServer
) -> None:
    a, b = clients
    user = await register_user(a, "workers")  # logs in on worker A, uses both
    session_id = await _session(b, user)

    fake_provider.script(Reply(tokens=TOKENS, interval_s=0.03))
    async with open_chat_stream(
        a, user.headers, read_deltas=2, session_id=session_id, prompt="hi"
    ) as started:
        message_id = started.message_id
    replay = await stream_sse(b, "GET", f"/chat/stream/{message_id}", headers=user.headers)
    assert replay.text == "".join(TOKENS)
    assert replay.final["status"] == "complete"

    fake_provider.script(Reply(tokens=TOKENS * 5, interval_s=0.03))
    async with open_chat_stream(
        a, user.headers, read_deltas=3, session_id=session_id, prompt="again"
    ) as live:
        r = await b.post(f"/chat/stop/{live.message_id}", headers=user.headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "stopped"
        running = await live.finish()
    assert running.final["status"] == "stopped"
    stored = (await _messages(b, user, session_id))[-1]
    assert stored["status"] == "stopped"
    assert 0 < len(stored["content"]) < len("".join(TOKENS * 5))


async def test_other_user_cannot_reach_a_remote_reply(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], fake_provider: FakeProviderServer
) -> None:
    a, b = clients
    owner, intruder = await register_user(a, "workers"), await register_user(b, "workers")
    session_id = await _session(a, owner)
    fake_provider.script(Reply(tokens=TOKENS, interval_s=0.03))
    async with open_chat_stream(
        a, owner.headers, read_deltas=1, session_id=session_id, prompt="hi"
    ) as live:
        await assert_unreachable(b, live.message_id, intruder)
        transcript = await live.finish()
    assert transcript.final["status"] == "complete"


async def test_rate_limit_is_shared_between_workers(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    user = await register_user(a, "workers")
    statuses = []
    for index in range(RATE + 1):
        client = a if index % 2 == 0 else b
        r = await client.post("/inference/query", json={"query": f"q{index}"}, headers=user.headers)
        statuses.append(r.status_code)
    assert statuses == [200] * RATE + [429]


async def test_failed_login_brake_is_shared_between_workers(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    user = await register_user(a, "workers")
    for index in range(10):
        client = a if index % 2 == 0 else b
        r = await client.post("/auth/login", json={"email": user.email, "password": "nope nope 1"})
        assert r.status_code == 401
    for client in (a, b):
        r = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
        assert r.status_code == 429
