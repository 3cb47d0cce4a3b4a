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
from tests.conftest import PASSWORD, TestUser, ThreadedServer, unique_email
from tests.fakes import FakeProviderServer, Reply
from tests.sse import SSETranscript, read_events, stream_sse
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


async def _user(client: httpx.AsyncClient) -> TestUser:
    email = unique_email("workers")
    await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    tokens = (await client.post("/auth/login", json={"email": email, "password": PASSWORD})).json()
    return TestUser(email, PASSWORD, "", tokens["access_token"], tokens["refresh_token"])


async def test_reattach_and_stop_from_another_worker(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], fake_provider: FakeProviderServer
) -> None:
    a, b = clients
    user = await _user(a)  # logs in on worker A, uses both
    session_id = await _session(b, user)

    fake_provider.script(Reply(tokens=TOKENS, interval_s=0.03))
    started = SSETranscript()
    async with a.stream(
        "POST",
        "/chat/stream",
        json={"session_id": session_id, "prompt": "hi"},
        headers=user.headers,
    ) as response:
        await read_events(response, started, stop_after_deltas=2)
    message_id = started.first["message_id"]
    replay = await stream_sse(b, "GET", f"/chat/stream/{message_id}", headers=user.headers)
    assert replay.text == "".join(TOKENS)
    assert replay.final["status"] == "complete"

    fake_provider.script(Reply(tokens=TOKENS * 5, interval_s=0.03))
    running = SSETranscript()
    async with a.stream(
        "POST",
        "/chat/stream",
        json={"session_id": session_id, "prompt": "again"},
        headers=user.headers,
    ) as response:
        await read_events(response, running, stop_after_deltas=3)
        message_id = running.first["message_id"]
        r = await b.post(f"/chat/stop/{message_id}", headers=user.headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "stopped"
        await read_events(response, running)
    assert running.final["status"] == "stopped"
    stored = (await _messages(b, user, session_id))[-1]
    assert stored["status"] == "stopped"
    assert 0 < len(stored["content"]) < len("".join(TOKENS * 5))


async def test_other_user_cannot_reach_a_remote_reply(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], fake_provider: FakeProviderServer
) -> None:
    a, b = clients
    owner, intruder = await _user(a), await _user(b)
    session_id = await _session(a, owner)
    fake_provider.script(Reply(tokens=TOKENS, interval_s=0.03))
    transcript = SSETranscript()
    async with a.stream(
        "POST",
        "/chat/stream",
        json={"session_id": session_id, "prompt": "hi"},
        headers=owner.headers,
    ) as response:
        await read_events(response, transcript, stop_after_deltas=1)
        message_id = transcript.first["message_id"]
        assert (
            await b.get(f"/chat/stream/{message_id}", headers=intruder.headers)
        ).status_code == 404
        assert (
            await b.post(f"/chat/stop/{message_id}", headers=intruder.headers)
        ).status_code == 404
        await read_events(response, transcript)
    assert transcript.final["status"] == "complete"


async def test_rate_limit_is_shared_between_workers(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    user = await _user(a)
    statuses = []
    for index in range(RATE + 1):
        client = a if index % 2 == 0 else b
        r = await client.post("/inference/query", json={"query": f"q{index}"}, headers=user.headers)
        statuses.append(r.status_code)
    assert statuses == [200] * RATE + [429]
