"""Outages of what the server depends on: the database and Redis go away while the app runs,
requests get clear 503s (never a 500), nothing stored is lost, and service comes back when the
dependency does, without restarting the app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnichat.app import create_app
from omnichat.cli import migrate
from omnichat.settings import Settings
from tests.conftest import lifespan_of, login_headers, make_settings, postgres_url
from tests.fakes import FakeProviderServer, Reply
from tests.redis_server import RedisServer

DEADLINE_S = 20.0


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert isinstance(response.json()["detail"], str)
    assert response.headers["retry-after"]


async def _until_ready(client: httpx.AsyncClient, path: str = "/readyz") -> None:
    deadline = time.monotonic() + DEADLINE_S
    while (await client.get(path)).status_code != 200:
        assert time.monotonic() < deadline, f"{path} never recovered"
        await asyncio.sleep(0.1)


async def _app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await migrate(settings)
    app = create_app(settings)
    async with lifespan_of(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


# -- the database ---------------------------------------------------------------------------


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[Any]:
    """A PostgreSQL server of this test's own: it is stopped and started again mid-test."""
    import pgserver

    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")
    try:
        yield server
    finally:
        pgserver.get_server(tmp_path / "pg", cleanup_mode="stop").cleanup()


async def test_database_outage_answers_503_and_recovers_without_restart(
    own_postgres: Any, tmp_path: Path
) -> None:
    import pgserver

    settings = make_settings(postgres_url(own_postgres, "outage"), tmp_path / "data")
    async for client in _app_client(settings):
        headers = await login_headers(client, "outage")
        session = (await client.post("/sessions", json={"title": "kept"}, headers=headers)).json()
        added = await client.post(
            "/api/chats",
            json={"session": session["id"], "role": "user", "message": "written before"},
            headers=headers,
        )
        assert added.status_code == 201, added.text

        own_postgres.cleanup()  # the database goes away under the running app
        assert (await client.get("/healthz")).status_code == 200  # the process itself is fine
        _assert_unavailable(await client.get("/readyz"))
        _assert_unavailable(await client.get("/sessions", headers=headers))
        _assert_unavailable(await client.post("/sessions", json={"title": "x"}, headers=headers))
        _assert_unavailable(
            await client.post("/auth/login", json={"email": "a@example.com", "password": "x"})
        )

        pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")  # back, same data
        await _until_ready(client)
        listed = await client.get("/sessions", headers=headers)
        assert listed.status_code == 200
        assert [s["title"] for s in listed.json()] == ["kept"]
        messages = await client.get(f"/sessions/{session['id']}/messages", headers=headers)
        assert [m["content"] for m in messages.json()] == ["written before"]


# -- Redis ----------------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """This test's own Redis: it is killed and started again mid-test."""
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


async def test_redis_outage_refuses_generation_clearly_and_loses_nothing(
    llm_settings: Settings,
    own_redis: RedisServer,
    fake_provider: FakeProviderServer,
) -> None:
    settings = llm_settings.model_copy(update={"redis_url": own_redis.url})
    async for client in _app_client(settings):
        headers = await login_headers(client, "outage")
        session = (await client.post("/sessions", json={"title": "t"}, headers=headers)).json()
        fake_provider.script(Reply("before the outage"))
        query = {"query": "hello", "session_id": session["id"]}
        answered = await client.post("/inference/query", json=query, headers=headers)
        assert answered.status_code == 200, answered.text

        own_redis.stop()
        refused = await client.post("/inference/query", json=query, headers=headers)
        _assert_unavailable(refused)
        streamed = await client.post(
            "/chat/stream", json={"session_id": session["id"], "prompt": "hi"}, headers=headers
        )
        _assert_unavailable(streamed)
        # What does not need Redis keeps working, and nothing stored was lost or half-written.
        messages = await client.get(f"/sessions/{session['id']}/messages", headers=headers)
        assert messages.status_code == 200
        assert [(m["role"], m["content"]) for m in messages.json()] == [
            ("user", "hello"),
            ("assistant", "before the outage"),
        ]

        own_redis.start()
        fake_provider.script(Reply("after the outage"))
        deadline = time.monotonic() + DEADLINE_S
        while (
            again := await client.post("/inference/query", json=query, headers=headers)
        ).status_code == 503:
            assert time.monotonic() < deadline, "generation never recovered"
            fake_provider.script(Reply("after the outage"))
            await asyncio.sleep(0.2)
        assert again.status_code == 200, again.text
        assert again.json()["response"] == "after the outage"
