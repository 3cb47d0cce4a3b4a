"""Access and refresh token security: expiry, tampering, alg=none, rotation, reuse detection,
logout and password change."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import httpx
import jwt
import pytest

from omnichat.auth.tokens import AccessTokenCodec
from omnichat.container import Container
from tests.conftest import TEST_SECRET, TestUser, age_rotation


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def _me_status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/auth/me", headers=_bearer(token))).status_code


async def test_access_token_claims(alice: TestUser) -> None:
    header = jwt.get_unverified_header(alice.access_token)
    assert header["alg"] == "HS256"
    claims = _claims(alice.access_token)
    assert claims["sub"] == alice.id
    assert claims["typ"] == "access"
    assert {"exp", "iat", "jti", "fam", "ver"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 15 * 60


async def test_expired_token_rejected(client: httpx.AsyncClient, alice: TestUser) -> None:
    claims = _claims(alice.access_token)
    expired = AccessTokenCodec(TEST_SECRET, timedelta(seconds=-5)).issue(
        alice.id, claims["fam"], claims["ver"]
    )
    r = await client.get("/auth/me", headers=_bearer(expired.token))
    assert r.status_code == 401
    assert r.json() == {"detail": "Token has expired"}


async def test_tampered_payload_rejected(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    header, _payload, signature = alice.access_token.split(".")
    forged_claims = _claims(alice.access_token) | {"sub": bob.id}
    forged = f"{header}.{_b64(forged_claims)}.{signature}"
    assert await _me_status(client, forged) == 401
    # Flipping one signature character is caught too.
    flipped = (
        alice.access_token[:-2]
        + ("A" if alice.access_token[-2] != "A" else "B")
        + alice.access_token[-1]
    )
    assert await _me_status(client, flipped) == 401


async def test_wrong_key_rejected(client: httpx.AsyncClient, alice: TestUser) -> None:
    claims = _claims(alice.access_token)
    other = AccessTokenCodec("x" * 64, timedelta(minutes=5)).issue(
        alice.id, claims["fam"], claims["ver"]
    )
    assert await _me_status(client, other.token) == 401


async def test_alg_none_rejected(client: httpx.AsyncClient, alice: TestUser) -> None:
    claims = _claims(alice.access_token)
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    assert await _me_status(client, unsigned) == 401


async def test_other_algorithm_rejected(client: httpx.AsyncClient, alice: TestUser) -> None:
    claims = _claims(alice.access_token)
    hs512 = jwt.encode(claims, TEST_SECRET, algorithm="HS512")
    assert await _me_status(client, hs512) == 401


async def test_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    assert await _me_status(client, alice.refresh_token) == 401
    # Nor is a correctly signed JWT of another type.
    claims = _claims(alice.access_token) | {"typ": "refresh"}
    assert await _me_status(client, jwt.encode(claims, TEST_SECRET, algorithm="HS256")) == 401


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "jti", "typ", "fam", "ver"])
async def test_token_missing_claim_rejected(
    client: httpx.AsyncClient, alice: TestUser, missing: str
) -> None:
    claims = _claims(alice.access_token)
    del claims[missing]
    assert await _me_status(client, jwt.encode(claims, TEST_SECRET, algorithm="HS256")) == 401


@pytest.mark.parametrize("exp", ["4102444800", None, [4102444800], True])
async def test_token_with_a_malformed_claim_type_rejected(
    client: httpx.AsyncClient, alice: TestUser, exp: object
) -> None:
    """Signed with the right key, but ``exp`` is not a number: 401, never a 500."""
    claims = _claims(alice.access_token)
    claims["exp"] = exp
    assert await _me_status(client, jwt.encode(claims, TEST_SECRET, algorithm="HS256")) == 401


async def test_refresh_rotation(client: httpx.AsyncClient, alice: TestUser) -> None:
    first = (await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})).json()
    second = (
        await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    assert len({alice.refresh_token, first["refresh_token"], second["refresh_token"]}) == 3
    assert await _me_status(client, second["access_token"]) == 200


async def test_reuse_revokes_whole_family(
    client: httpx.AsyncClient, alice: TestUser, container: Container
) -> None:
    rotated = (
        await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    ).json()
    await age_rotation(container.settings, alice.refresh_token)
    # An attacker replays the already-rotated token, after the leeway.
    r = await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert r.status_code == 401
    assert "reuse" in r.json()["detail"].lower()
    # The legitimate holder's newer token and every access token of the family are now dead.
    r = await client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert r.status_code == 401
    assert await _me_status(client, rotated["access_token"]) == 401
    assert await _me_status(client, alice.access_token) == 401


async def test_reuse_leaves_other_logins_alone(
    client: httpx.AsyncClient, alice: TestUser, container: Container
) -> None:
    other = (
        await client.post("/auth/login", json={"email": alice.email, "password": alice.password})
    ).json()
    await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    await age_rotation(container.settings, alice.refresh_token)
    r = await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})  # reuse
    assert r.status_code == 401
    assert await _me_status(client, other["access_token"]) == 200
    r = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert r.status_code == 200


async def test_unknown_refresh_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/auth/refresh", json={"refresh_token": "not-a-real-token"})
    assert r.status_code == 401
    assert r.json() == {"detail": "Invalid or expired refresh token"}


async def test_refresh_token_absolute_lifetime(
    client: httpx.AsyncClient, alice: TestUser, container: Container
) -> None:
    from sqlalchemy import update

    from omnichat.auth.models import TokenFamily
    from omnichat.db.base import utcnow

    async with container.database.writer() as db:
        await db.execute(
            update(TokenFamily)
            .where(TokenFamily.user_id == alice.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await db.commit()
    r = await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert r.status_code == 401
    # The family's access tokens end with it.
    assert await _me_status(client, alice.access_token) == 401


async def test_logout_with_refresh_token_kills_access_tokens(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    r = await client.post("/auth/logout", json={"refresh_token": alice.refresh_token})
    assert r.status_code == 200
    assert await _me_status(client, alice.access_token) == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    ).status_code == 401


async def test_logout_with_bearer_only(client: httpx.AsyncClient, alice: TestUser) -> None:
    r = await client.post("/auth/logout", headers=alice.headers)
    assert r.status_code == 200
    assert await _me_status(client, alice.access_token) == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    ).status_code == 401


async def test_logout_only_ends_that_login(client: httpx.AsyncClient, alice: TestUser) -> None:
    other = (
        await client.post("/auth/login", json={"email": alice.email, "password": alice.password})
    ).json()
    await client.post("/auth/logout", headers=alice.headers)
    assert await _me_status(client, other["access_token"]) == 200


async def test_logout_without_credentials(client: httpx.AsyncClient) -> None:
    r = await client.post("/auth/logout")
    assert r.status_code == 401


async def test_logout_with_someone_elses_refresh_token(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    r = await client.post(
        "/auth/logout", json={"refresh_token": bob.refresh_token}, headers=alice.headers
    )
    assert r.status_code == 401
    # Bob's login is untouched, and so is Alice's (the request failed as a whole).
    assert await _me_status(client, bob.access_token) == 200
    assert await _me_status(client, alice.access_token) == 200


async def test_logout_with_expired_access_token_and_refresh_token(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    claims = _claims(alice.access_token)
    expired = AccessTokenCodec(TEST_SECRET, timedelta(seconds=-5)).issue(
        alice.id, claims["fam"], claims["ver"]
    )
    r = await client.post(
        "/auth/logout", json={"refresh_token": alice.refresh_token}, headers=_bearer(expired.token)
    )
    assert r.status_code == 200
    assert (
        await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    ).status_code == 401


async def test_password_change_ends_every_login(client: httpx.AsyncClient, alice: TestUser) -> None:
    other = (
        await client.post("/auth/login", json={"email": alice.email, "password": alice.password})
    ).json()
    new_password = "a brand new passphrase"
    r = await client.put(
        "/users/me/",
        json={"password": new_password, "current_password": alice.password},
        headers=alice.headers,
    )
    assert r.status_code == 200
    for token in (alice.access_token, other["access_token"]):
        assert await _me_status(client, token) == 401
    for refresh in (alice.refresh_token, other["refresh_token"]):
        assert (
            await client.post("/auth/refresh", json={"refresh_token": refresh})
        ).status_code == 401
    old = await client.post("/auth/login", json={"email": alice.email, "password": alice.password})
    assert old.status_code == 401
    new = await client.post("/auth/login", json={"email": alice.email, "password": new_password})
    assert new.status_code == 200


async def test_password_change_needs_current_password(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    r = await client.put(
        "/users/me/", json={"password": "another passphrase!"}, headers=alice.headers
    )
    assert r.status_code == 400
    r = await client.put(
        "/users/me/",
        json={"password": "another passphrase!", "current_password": "wrong guess 123"},
        headers=alice.headers,
    )
    assert r.status_code == 400
    # Nothing changed: the old token and password still work.
    assert await _me_status(client, alice.access_token) == 200


async def test_password_change_rejects_weak_password(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    r = await client.put(
        "/users/me/",
        json={"password": "password123", "current_password": alice.password, "username": "renamed"},
        headers=alice.headers,
    )
    assert r.status_code == 422
    # No partial write: the username change in the same request was rolled back too.
    me = (await client.get("/users/me/", headers=alice.headers)).json()
    assert me["username"] != "renamed"
