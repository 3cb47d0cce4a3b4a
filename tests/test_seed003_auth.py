"""Seed 003 (/auth with refresh tokens, /sessions/ with trailing slash), as its document shows."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, TestUser, unique_email


async def test_register_login_me(client: httpx.AsyncClient) -> None:
    email = unique_email("c")
    r = await client.post(
        "/auth/register",
        json={"email": email, "first_name": "John", "last_name": "Doe", "password": PASSWORD},
    )
    assert r.status_code == 200
    registered = r.json()
    assert {k: registered[k] for k in ("email", "first_name", "last_name")} == {
        "email": email,
        "first_name": "John",
        "last_name": "Doe",
    }
    r = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200
    tokens = r.json()
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    r = await client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 200
    assert r.json() == registered


async def test_refresh_returns_new_pair(client: httpx.AsyncClient, alice: TestUser) -> None:
    r = await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert r.status_code == 200
    pair = r.json()
    assert pair["refresh_token"] != alice.refresh_token
    assert pair["access_token"] != alice.access_token
    r = await client.get("/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert r.status_code == 200
    assert r.json()["id"] == alice.id


async def test_logout_revokes_refresh_token(client: httpx.AsyncClient, alice: TestUser) -> None:
    r = await client.post(
        "/auth/logout", json={"refresh_token": alice.refresh_token}, headers=alice.headers
    )
    assert r.status_code == 200
    r = await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert r.status_code == 401


async def test_sessions_with_trailing_slash(client: httpx.AsyncClient, alice: TestUser) -> None:
    r = await client.post("/sessions/", json={"title": "My New Session"}, headers=alice.headers)
    assert r.status_code == 200
    created = r.json()
    assert created["title"] == "My New Session"
    assert created["created_at"]
    r = await client.get("/sessions/", headers=alice.headers)
    assert r.status_code == 200
    listed = r.json()
    assert [s["id"] for s in listed] == [created["id"]]
    assert listed[0]["updated_at"]


async def test_no_redirects_between_slash_forms(client: httpx.AsyncClient, alice: TestUser) -> None:
    for path in ("/sessions", "/sessions/"):
        r = await client.get(path, headers=alice.headers)
        assert r.status_code == 200, path
        assert not r.history


async def test_session_messages(client: httpx.AsyncClient, alice: TestUser) -> None:
    session_id = (
        await client.post("/sessions/", json={"title": "RAG"}, headers=alice.headers)
    ).json()["id"]
    await client.post(
        "/api/chats",
        json={"message": "What is RAG?", "role": "user", "session": session_id},
        headers=alice.headers,
    )
    r = await client.get(f"/sessions/{session_id}/messages", headers=alice.headers)
    assert r.status_code == 200
    [message] = r.json()
    assert message["role"] == "user"
    assert message["content"] == "What is RAG?"
    assert message["created_at"].endswith("Z")
    assert isinstance(message["id"], str)
    r = await client.delete(f"/sessions/{session_id}", headers=alice.headers)
    assert r.status_code == 204
    r = await client.get(f"/sessions/{session_id}/messages", headers=alice.headers)
    assert r.status_code == 404


async def test_messages_pagination(client: httpx.AsyncClient, alice: TestUser) -> None:
    session_id = (await client.post("/sessions/", json={}, headers=alice.headers)).json()["id"]
    for i in range(5):
        await client.post(
            "/api/chats",
            json={"message": f"m{i}", "role": "user", "session": session_id},
            headers=alice.headers,
        )
    r = await client.get(
        f"/sessions/{session_id}/messages", params={"limit": 2, "offset": 2}, headers=alice.headers
    )
    assert [m["content"] for m in r.json()] == ["m2", "m3"]
