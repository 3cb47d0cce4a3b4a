"""One user table: a user registered through any dialect logs in through every other, and sees
the same sessions through every dialect."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PASSWORD, unique_email


async def _register(client: httpx.AsyncClient, dialect: str, email: str) -> None:
    if dialect == "express":
        r = await client.post(
            "/api/auth/register", json={"username": "x", "email": email, "password": PASSWORD}
        )
        assert r.status_code == 201, r.text
    elif dialect == "oauth":
        r = await client.post(
            "/users/", json={"username": "x", "email": email, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
    else:
        r = await client.post(
            "/auth/register",
            json={"email": email, "password": PASSWORD, "first_name": "A", "last_name": "B"},
        )
        assert r.status_code == 200, r.text


async def _login(client: httpx.AsyncClient, dialect: str, email: str) -> str:
    if dialect == "express":
        r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])
    if dialect == "oauth":
        r = await client.post("/token", data={"username": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])
    r = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


ME_PATHS = {"express": "/api/auth/me", "oauth": "/users/me/", "auth": "/auth/me"}
DIALECTS = list(ME_PATHS)


@pytest.mark.parametrize("registered_via", DIALECTS)
@pytest.mark.parametrize("login_via", DIALECTS)
async def test_register_via_one_login_via_another(
    client: httpx.AsyncClient, registered_via: str, login_via: str
) -> None:
    email = unique_email(registered_via)
    await _register(client, registered_via, email)
    # Email is the identity and compares case-insensitively.
    token = await _login(client, login_via, email.upper())
    ids = set()
    for path in ME_PATHS.values():
        r = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, path
        assert r.json()["email"] == email
        ids.add(r.json()["id"])
    assert len(ids) == 1


async def test_sessions_shared_across_dialects(client: httpx.AsyncClient) -> None:
    email = unique_email("shared")
    await _register(client, "auth", email)
    headers = {"Authorization": f"Bearer {await _login(client, 'express', email)}"}
    a = (await client.post("/api/sessions", json={"title": "from A"}, headers=headers)).json()
    b = (await client.post("/sessions", json={"title": "from B"}, headers=headers)).json()
    express_ids = [s["id"] for s in (await client.get("/api/sessions", headers=headers)).json()]
    rest_ids = [s["id"] for s in (await client.get("/sessions/", headers=headers)).json()]
    assert express_ids == rest_ids == [b["id"], a["id"]]
