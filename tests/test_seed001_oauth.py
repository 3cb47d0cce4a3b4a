"""Seed 001 (OAuth2 password flow, /users, /sessions), called exactly as its document shows."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, unique_email


async def _create_and_login(client: httpx.AsyncClient) -> tuple[str, dict[str, str], dict]:
    email = unique_email("oauth")
    r = await client.post(
        "/users/", json={"username": "testuser", "email": email, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    created = r.json()
    r = await client.post(
        "/token",
        data={"username": email, "password": PASSWORD},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["token_type"] == "bearer"
    return email, {"Authorization": f"Bearer {token['access_token']}"}, created


async def test_create_user_response_shape(client: httpx.AsyncClient) -> None:
    email = unique_email("oauth")
    r = await client.post(
        "/users/", json={"username": "testuser", "email": email, "password": PASSWORD}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["username"] == "testuser"
    assert body["email"] == email
    assert isinstance(body["id"], str)
    assert len(body["id"]) == 36
    assert "password" not in body
    assert "password_hash" not in body


async def test_token_wrong_credentials_documented_body(client: httpx.AsyncClient) -> None:
    email, _, _ = await _create_and_login(client)
    for username, password in ((email, "wrong-password-1"), (unique_email("x"), PASSWORD)):
        r = await client.post("/token", data={"username": username, "password": password})
        assert r.status_code == 401
        assert r.json() == {"detail": "Incorrect username or password"}
        assert r.headers["www-authenticate"] == "Bearer"


async def test_token_requires_form_fields(client: httpx.AsyncClient) -> None:
    r = await client.post("/token", data={"username": unique_email()})
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str)


async def test_get_and_update_me(client: httpx.AsyncClient) -> None:
    email, headers, created = await _create_and_login(client)
    r = await client.get("/users/me/", headers=headers)
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("id", "username", "email")} == {
        "id": created["id"],
        "username": "testuser",
        "email": email,
    }
    r = await client.put("/users/me/", json={"username": "new_username"}, headers=headers)
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("id", "username", "email")} == {
        "id": created["id"],
        "username": "new_username",
        "email": email,
    }
    assert (await client.get("/users/me/", headers=headers)).json()["username"] == "new_username"


async def test_sessions_crud_as_documented(client: httpx.AsyncClient) -> None:
    _, headers, created = await _create_and_login(client)
    r = await client.post("/sessions", json={"title": "New Chat Session"}, headers=headers)
    assert r.status_code == 200
    session = r.json()
    assert session["title"] == "New Chat Session"
    assert session["user_id"] == created["id"]
    for key in ("id", "created_at", "updated_at"):
        assert key in session
    assert session["created_at"].endswith("Z")

    r = await client.get("/sessions", headers=headers)
    assert r.status_code == 200
    assert [s["id"] for s in r.json()] == [session["id"]]
    assert set(r.json()[0]) >= {"id", "title", "user_id", "created_at", "updated_at"}

    r = await client.put(
        f"/sessions/{session['id']}", json={"title": "Updated Title"}, headers=headers
    )
    assert r.status_code == 200
    assert r.json()["title"] == "Updated Title"

    r = await client.get(f"/sessions/{session['id']}", headers=headers)
    assert r.status_code == 200
    detail = r.json()
    assert detail["id"] == session["id"]
    assert detail["title"] == "Updated Title"
    assert detail["messages"] == []

    r = await client.delete(f"/sessions/{session['id']}", headers=headers)
    assert r.status_code == 204
    assert r.content == b""
    assert (await client.get(f"/sessions/{session['id']}", headers=headers)).status_code == 404


async def test_session_detail_lists_messages_oldest_first(client: httpx.AsyncClient) -> None:
    _, headers, _ = await _create_and_login(client)
    session_id = (await client.post("/sessions", json={"title": "t"}, headers=headers)).json()["id"]
    for role, text in (("user", "Hello!"), ("assistant", "Hi there!")):
        r = await client.post(
            "/api/chats",
            json={"message": text, "role": role, "session": session_id},
            headers=headers,
        )
        assert r.status_code == 201
    r = await client.get(f"/sessions/{session_id}", headers=headers)
    messages = r.json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "Hello!"),
        ("assistant", "Hi there!"),
    ]
    assert all(isinstance(m["id"], str) for m in messages)


async def test_delete_session_removes_its_messages(client: httpx.AsyncClient, container) -> None:
    from sqlalchemy import func, select

    from omnichat.chats.models import Message

    _, headers, _ = await _create_and_login(client)
    session_id = (await client.post("/sessions", json={}, headers=headers)).json()["id"]
    for i in range(3):
        await client.post(
            "/api/chats",
            json={"message": f"m{i}", "role": "user", "session": session_id},
            headers=headers,
        )
    assert (await client.delete(f"/sessions/{session_id}", headers=headers)).status_code == 204
    async with container.database.reader() as db:
        remaining = await db.scalar(
            select(func.count()).select_from(Message).where(Message.session_id == session_id)
        )
    assert remaining == 0


async def test_rename_requires_title(client: httpx.AsyncClient) -> None:
    _, headers, _ = await _create_and_login(client)
    session_id = (await client.post("/sessions", json={"title": "keep"}, headers=headers)).json()[
        "id"
    ]
    r = await client.put(f"/sessions/{session_id}", json={}, headers=headers)
    assert r.status_code == 422
    assert (await client.get(f"/sessions/{session_id}", headers=headers)).json()["title"] == "keep"
