"""Personal API keys end when they should: a password change revokes every key of the user
(and says how many), an API key cannot create, list or delete keys, and a key may expire;
expired keys make room under the limit on keys."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from omnichat.apikeys.models import ApiKey
from omnichat.apikeys.service import MAX_KEYS_PER_USER
from omnichat.container import Container
from omnichat.db.base import utcnow
from tests.conftest import TestUser

NEW_PASSWORD = "a brand new passphrase"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _new_key(client: httpx.AsyncClient, user: TestUser, **body: object) -> dict[str, str]:
    r = await client.post("/api-keys", json={"name": "k", **body}, headers=user.headers)
    assert r.status_code == 201, r.text
    created: dict[str, str] = r.json()
    return created


async def _works(client: httpx.AsyncClient, key: str) -> bool:
    r = await client.get("/auth/me", headers=_bearer(key))
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


async def test_a_password_change_revokes_every_api_key_of_the_user(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    alice_keys = [(await _new_key(client, alice))["key"] for _ in range(2)]
    bob_keys = [(await _new_key(client, bob))["key"] for _ in range(2)]
    assert all([await _works(client, key) for key in alice_keys + bob_keys])

    r = await client.put(
        "/users/me/",
        json={"password": NEW_PASSWORD, "current_password": alice.password},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    # Seed 001's documented fields (and the rest of UserOut) stay as they were.
    assert {k: body[k] for k in ("id", "username", "email")} == {
        "id": alice.id,
        "username": body["username"],
        "email": alice.email,
    }
    assert set(body) == {
        "id",
        "email",
        "username",
        "first_name",
        "last_name",
        "created_at",
        "api_keys_revoked",
    }
    assert body["api_keys_revoked"] == 2

    assert not any([await _works(client, key) for key in alice_keys])
    assert all([await _works(client, key) for key in bob_keys])  # Bob's are his own
    login = await client.post("/auth/login", json={"email": alice.email, "password": NEW_PASSWORD})
    assert login.status_code == 200
    r = await client.get("/api-keys", headers=_bearer(login.json()["access_token"]))
    assert r.json() == []


async def test_other_profile_changes_revoke_no_key(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    key = (await _new_key(client, alice))["key"]
    r = await client.put("/users/me/", json={"username": "renamed"}, headers=alice.headers)
    assert r.status_code == 200
    assert r.json()["api_keys_revoked"] == 0
    assert r.json()["username"] == "renamed"
    assert await _works(client, key)


async def test_a_password_change_made_with_an_api_key_revokes_that_key_too(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    keys = [(await _new_key(client, alice))["key"] for _ in range(2)]
    r = await client.put(
        "/users/me/",
        json={"password": NEW_PASSWORD, "current_password": alice.password},
        headers=_bearer(keys[0]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["api_keys_revoked"] == 2
    assert not any([await _works(client, key) for key in keys])


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api-keys"), ("GET", "/api-keys"), ("DELETE", "/api-keys/{other}")],
    ids=["create", "list", "delete"],
)
async def test_an_api_key_cannot_create_list_or_delete_keys(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, method: str, path: str
) -> None:
    for user in (alice, bob):
        key = (await _new_key(client, user))["key"]
        other = await _new_key(client, user)
        r = await client.request(
            method,
            path.format(other=other["id"]),
            json=None if method == "DELETE" else {"name": "more"},
            headers=_bearer(key),
        )
        assert r.status_code == 403, r.text
        assert set(r.json()) == {"detail"}
        assert "API key" in r.json()["detail"]
        listed = (await client.get("/api-keys", headers=user.headers)).json()
        assert len(listed) == 2  # no key was minted or deleted
        assert await _works(client, key)  # the key itself still works where it may
        assert await _works(client, other["key"])


async def test_expired_keys_make_room_under_the_limit(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, container: Container
) -> None:
    keys = [await _new_key(client, alice) for _ in range(MAX_KEYS_PER_USER)]
    bobs = await _new_key(client, bob)
    r = await client.post("/api-keys", json={"name": "one too many"}, headers=alice.headers)
    assert r.status_code == 400, r.text
    assert r.json() == {"detail": f"At most {MAX_KEYS_PER_USER} API keys per user"}

    expired_ids = {keys[0]["id"], keys[7]["id"]}
    async with container.database.writer() as db:
        await db.execute(
            update(ApiKey)
            .where(ApiKey.id.in_(expired_ids))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await db.commit()
    listed = (await client.get("/api-keys", headers=alice.headers)).json()
    assert expired_ids <= {k["id"] for k in listed}  # still shown until room is needed

    fresh = await _new_key(client, alice)
    listed_ids = {k["id"] for k in (await client.get("/api-keys", headers=alice.headers)).json()}
    assert fresh["id"] in listed_ids
    assert not expired_ids & listed_ids
    assert len(listed_ids) == MAX_KEYS_PER_USER - 1
    assert await _works(client, fresh["key"])
    assert await _works(client, keys[1]["key"])
    assert await _works(client, bobs["key"])
    r = await client.post("/api-keys", json={"name": "full again"}, headers=alice.headers)
    assert r.status_code == 201, r.text
    r = await client.post("/api-keys", json={"name": "one too many"}, headers=alice.headers)
    assert r.status_code == 400, r.text


async def test_a_key_may_expire_and_says_when(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, container: Container
) -> None:
    before = utcnow()
    expiring = await _new_key(client, alice, expires_in_days=30)
    lasting = await _new_key(client, alice)
    bobs = await _new_key(client, bob, expires_in_days=1)
    expected = before + timedelta(days=30)
    assert (
        timedelta(0)
        <= datetime.fromisoformat(expiring["expires_at"]) - expected
        <= timedelta(minutes=1)
    )
    assert lasting["expires_at"] is None
    listed = {k["id"]: k for k in (await client.get("/api-keys", headers=alice.headers)).json()}
    assert listed[expiring["id"]]["expires_at"] == expiring["expires_at"]
    assert listed[lasting["id"]]["expires_at"] is None
    assert all([await _works(client, k["key"]) for k in (expiring, lasting, bobs)])

    async with container.database.writer() as db:
        await db.execute(
            update(ApiKey)
            .where(ApiKey.id == expiring["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await db.commit()
    r = await client.get("/auth/me", headers=_bearer(expiring["key"]))
    assert r.status_code == 401
    assert r.json() == {"detail": "Invalid API key"}  # refused as a revoked key is
    assert r.headers["www-authenticate"] == "Bearer"
    r = await client.get("/v1/models", headers=_bearer(expiring["key"]))
    assert r.status_code == 401
    assert await _works(client, lasting["key"])
    assert await _works(client, bobs["key"])


@pytest.mark.parametrize("days", [0, -1, 3651, "30", True, 1.5, 10**20])
async def test_a_bad_expiry_is_422(
    client: httpx.AsyncClient, alice: TestUser, days: object
) -> None:
    r = await client.post(
        "/api-keys", json={"name": "k", "expires_in_days": days}, headers=alice.headers
    )
    assert r.status_code == 422, r.text
    assert "expires_in_days" in r.text
    assert (await client.get("/api-keys", headers=alice.headers)).json() == []
