"""Seed 000 (Express-style API), called exactly as its document shows."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, unique_email


async def _register(client: httpx.AsyncClient) -> tuple[str, dict[str, str], dict]:
    email = unique_email("express")
    r = await client.post(
        "/api/auth/register", json={"username": "tester", "email": email, "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return email, {"Authorization": f"Bearer {body['token']}"}, body


async def test_register_returns_token_and_user(client: httpx.AsyncClient) -> None:
    email, _headers, body = await _register(client)
    assert body["token"] == body["access_token"]
    assert body["refresh_token"]
    assert body["user"]["email"] == email
    assert body["user"]["username"] == "tester"
    assert body["user"]["id"] == body["user"]["_id"]
    assert "password" not in str(body["user"]).lower()


async def test_login_and_me(client: httpx.AsyncClient) -> None:
    email, _, registered = await _register(client)
    r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200
    token = r.json()["token"]
    r = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    me = r.json()
    assert me["email"] == email
    assert me["id"] == me["_id"] == registered["user"]["id"]
    assert me["createdAt"].endswith("Z")


async def test_login_wrong_password_and_unknown_email_look_the_same(
    client: httpx.AsyncClient,
) -> None:
    email, _, _ = await _register(client)
    wrong = await client.post("/api/auth/login", json={"email": email, "password": "nope-nope-9"})
    unknown = await client.post(
        "/api/auth/login", json={"email": unique_email("ghost"), "password": "nope-nope-9"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "Incorrect email or password"}


async def test_me_without_token_is_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/auth/me")
    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}
    assert r.headers["www-authenticate"] == "Bearer"


async def test_example_chat_flow(client: httpx.AsyncClient) -> None:
    """The document's "Example Chat Flow", step by step."""
    _, headers, _ = await _register(client)

    r = await client.post("/api/sessions", json={}, headers=headers)
    assert r.status_code == 201
    session = r.json()
    session_id = session["id"]
    assert session["_id"] == session_id
    assert session["title"] == "New Chat"

    r = await client.post(
        "/api/chats",
        json={"message": "What is the capital of France?", "role": "user", "session": session_id},
        headers=headers,
    )
    assert r.status_code == 201
    user_message = r.json()
    assert user_message["message"] == "What is the capital of France?"
    assert user_message["role"] == "user"
    assert user_message["session"] == session_id
    assert user_message["_id"] == user_message["id"]

    r = await client.post(
        "/api/chats",
        json={"message": "Paris.", "role": "assistant", "session": session_id},
        headers=headers,
    )
    assert r.status_code == 201

    r = await client.get(f"/api/chats/{session_id}", headers=headers)
    assert r.status_code == 200
    history = r.json()
    assert [(m["role"], m["message"]) for m in history] == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris."),
    ]

    # The first user message named the untitled session.
    r = await client.get(f"/api/sessions/{session_id}", headers=headers)
    assert r.status_code == 200
    assert r.json()["title"] == "What is the capital of France?"

    r = await client.delete(f"/api/chats/{history[1]['id']}", headers=headers)
    assert r.status_code == 200
    r = await client.get(f"/api/chats/{session_id}", headers=headers)
    assert [m["message"] for m in r.json()] == ["What is the capital of France?"]

    r = await client.delete(f"/api/chats/session/{session_id}", headers=headers)
    assert r.status_code == 200
    assert r.json()["deletedCount"] == 1
    r = await client.get(f"/api/chats/{session_id}", headers=headers)
    assert r.json() == []
    # Clearing the history keeps the session.
    assert (await client.get(f"/api/sessions/{session_id}", headers=headers)).status_code == 200

    r = await client.delete(f"/api/sessions/{session_id}", headers=headers)
    assert r.status_code == 200
    assert (await client.get(f"/api/sessions/{session_id}", headers=headers)).status_code == 404
    assert (await client.get(f"/api/chats/{session_id}", headers=headers)).status_code == 404


async def test_create_session_with_title_and_without_body(client: httpx.AsyncClient) -> None:
    _, headers, _ = await _register(client)
    r = await client.post("/api/sessions", json={"title": "Trip planning"}, headers=headers)
    assert r.status_code == 201
    assert r.json()["title"] == "Trip planning"
    r = await client.post("/api/sessions", headers=headers)
    assert r.status_code == 201
    assert r.json()["title"] == "New Chat"


async def test_sessions_list_newest_updated_first(client: httpx.AsyncClient) -> None:
    _, headers, _ = await _register(client)
    ids = []
    for title in ("first", "second", "third"):
        r = await client.post("/api/sessions", json={"title": title}, headers=headers)
        ids.append(r.json()["id"])
    r = await client.get("/api/sessions", headers=headers)
    assert [s["title"] for s in r.json()] == ["third", "second", "first"]
    # A new message bumps its session to the top.
    await client.post(
        "/api/chats", json={"message": "hi", "role": "user", "session": ids[0]}, headers=headers
    )
    r = await client.get("/api/sessions", headers=headers)
    assert [s["title"] for s in r.json()] == ["first", "third", "second"]
    r = await client.get("/api/sessions", params={"limit": 1, "offset": 1}, headers=headers)
    assert [s["title"] for s in r.json()] == ["third"]


async def test_message_accepts_content_alias_and_system_role(client: httpx.AsyncClient) -> None:
    _, headers, _ = await _register(client)
    session_id = (await client.post("/api/sessions", json={}, headers=headers)).json()["id"]
    r = await client.post(
        "/api/chats",
        json={"content": "You are terse.", "role": "system", "session": session_id},
        headers=headers,
    )
    assert r.status_code == 201
    assert r.json()["message"] == "You are terse."
    # A system message does not title the session.
    r = await client.get(f"/api/sessions/{session_id}", headers=headers)
    assert r.json()["title"] == "New Chat"


async def test_delete_missing_message_is_404(client: httpx.AsyncClient) -> None:
    _, headers, _ = await _register(client)
    r = await client.delete("/api/chats/01900000-0000-7000-8000-000000000000", headers=headers)
    assert r.status_code == 404
    assert r.json() == {"detail": "Message not found"}
