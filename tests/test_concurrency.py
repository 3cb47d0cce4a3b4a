"""Concurrent requests on one database: no lost writes, no 500s (SQLite write lock, PostgreSQL
row locks), and one rotation when a refresh token is raced, every racer getting a pair of the
same login (the reuse leeway; tests/test_refresh_leeway.py has the rest)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from omnichat.auth.models import User
from omnichat.chats.models import Message
from omnichat.container import Container
from omnichat.db.base import utcnow
from omnichat.db.unit_of_work import unit_of_work
from omnichat.ids import new_id
from tests.conftest import TestUser


async def test_concurrent_message_writes_all_land(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    sessions = [
        (await client.post("/sessions", json={"title": f"s{i}"}, headers=alice.headers)).json()[
            "id"
        ]
        for i in range(3)
    ]

    async def add(i: int) -> int:
        r = await client.post(
            "/api/chats",
            json={"message": f"m{i}", "role": "user", "session": sessions[i % 3]},
            headers=alice.headers,
        )
        return r.status_code

    statuses = await asyncio.gather(*(add(i) for i in range(60)))
    assert statuses == [201] * 60
    counts = []
    for session_id in sessions:
        r = await client.get(f"/sessions/{session_id}/messages", headers=alice.headers)
        counts.append(len(r.json()))
    assert counts == [20, 20, 20]


async def test_concurrent_registrations_of_one_email(client: httpx.AsyncClient) -> None:
    from tests.conftest import PASSWORD, unique_email

    email = unique_email("race")

    async def register() -> int:
        r = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
        return r.status_code

    statuses = sorted(await asyncio.gather(*(register() for _ in range(5))))
    assert statuses == [200, 400, 400, 400, 400]


async def test_raced_refresh_keeps_the_login(client: httpx.AsyncClient, alice: TestUser) -> None:
    async def refresh() -> httpx.Response:
        return await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})

    responses = await asyncio.gather(*(refresh() for _ in range(5)))
    # One rotation; the others reuse the rotated token within the leeway: each gets a pair of
    # the same login and nothing is revoked.
    assert [r.status_code for r in responses] == [200] * 5
    for r in responses:
        me = await client.get(
            "/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        )
        assert me.status_code == 200
    assert (await client.get("/auth/me", headers=alice.headers)).status_code == 200


async def test_concurrent_deletes_of_one_session(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    session_id = (await client.post("/sessions", json={}, headers=alice.headers)).json()["id"]

    async def delete() -> int:
        return (await client.delete(f"/sessions/{session_id}", headers=alice.headers)).status_code

    statuses = sorted(await asyncio.gather(*(delete() for _ in range(4))))
    assert statuses == [204, 404, 404, 404]


async def test_messages_racing_a_session_delete_leave_no_orphans(
    client: httpx.AsyncClient, alice: TestUser, container: Container
) -> None:
    session_id = (await client.post("/sessions", json={}, headers=alice.headers)).json()["id"]

    async def add(i: int) -> int:
        r = await client.post(
            "/api/chats",
            json={"message": f"m{i}", "role": "user", "session": session_id},
            headers=alice.headers,
        )
        return r.status_code

    async def delete() -> int:
        return (await client.delete(f"/sessions/{session_id}", headers=alice.headers)).status_code

    results = await asyncio.gather(
        *(add(i) for i in range(10)), delete(), *(add(i) for i in range(10))
    )
    assert results[10] == 204
    assert set(results[:10] + results[11:]) <= {201, 404}
    async with container.database.reader() as db:
        orphans = await db.scalar(
            select(func.count()).select_from(Message).where(Message.session_id == session_id)
        )
    assert orphans == 0


async def test_a_constraint_failure_is_sqlalchemys_error_on_every_backend(
    container: Container, alice: TestUser, client: httpx.AsyncClient
) -> None:
    """What a concurrent change that loses a race raises must be SQLAlchemy's ``IntegrityError``
    on SQLite too (its driver, sqlean, raised its own class, which no handler knew: a 500
    where a 409 was due), on the writer and on the readers."""
    for factory in (container.database.writer, container.database.reader):
        with pytest.raises(IntegrityError):
            async with unit_of_work(factory) as db:
                await db.execute(
                    insert(Message).values(
                        id=new_id(),
                        session_id="no-such-session",
                        user_id=alice.id,
                        role="user",
                        content="orphan",
                        status="complete",
                        created_at=utcnow(),
                        updated_at=utcnow(),
                    )
                )
        with pytest.raises(IntegrityError):
            async with unit_of_work(factory) as db:
                await db.execute(
                    insert(User).values(
                        id=new_id(),
                        email=alice.email,  # taken
                        password_hash="x",
                        token_version=0,
                        created_at=utcnow(),
                        updated_at=utcnow(),
                    )
                )
    assert (await client.get("/auth/me", headers=alice.headers)).status_code == 200
