"""Secrets: credentials are stored only as hashes (a copy of the database gives an attacker no
password, refresh token or API key that works), and no error answer repeats one back."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import String, select

from omnichat.apikeys.models import ApiKey
from omnichat.auth.models import RefreshToken, User
from omnichat.container import Container
from omnichat.db.base import Base
from tests.conftest import TestUser, unique_email


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def test_credentials_are_stored_only_as_hashes(
    client: httpx.AsyncClient, alice: TestUser, container: Container
) -> None:
    r = await client.post("/api-keys", json={"name": "at rest"}, headers=alice.headers)
    assert r.status_code == 201, r.text
    api_key, key_id = r.json()["key"], r.json()["id"]

    async with container.database.reader() as db:
        user = (await db.scalars(select(User).where(User.email == alice.email))).one()
        key = (await db.scalars(select(ApiKey).where(ApiKey.id == key_id))).one()
        refresh = await db.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == sha256(alice.refresh_token))
        )
        # argon2id with the documented parameters, salted (not the password, not a bare digest)
        assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert key.key_hash == sha256(api_key)
        assert refresh is not None

        # No text column of any table holds one of the secrets themselves.
        secrets = {alice.password, api_key, alice.refresh_token, alice.access_token}
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String)]
            if not columns:
                continue
            for row in await db.execute(select(*columns)):
                for value in row:
                    assert not any(
                        isinstance(value, str) and secret in value for secret in secrets
                    ), f"a secret is stored in {table.name}"


def _secret() -> str:
    return f"Sekrit-{uuid.uuid4().hex}"


def _failing_requests(secret: str, email: str) -> dict[str, dict[str, Any]]:
    """Requests that carry ``secret`` as a credential and fail."""
    return {
        "password-too-long": {
            "method": "POST",
            "url": "/auth/register",
            "json": {"email": unique_email(), "password": secret * 100},
        },
        "bad-email-with-password": {
            "method": "POST",
            "url": "/auth/register",
            "json": {"email": "not-an-email", "password": secret},
        },
        "wrong-password": {
            "method": "POST",
            "url": "/auth/login",
            "json": {"email": email, "password": secret},
        },
        "wrong-password-form": {
            "method": "POST",
            "url": "/token",
            "data": {"username": email, "password": secret},
        },
        "malformed-json": {
            "method": "POST",
            "url": "/auth/login",
            "content": f'{{"email": "{email}", "password": "{secret}"',
            "headers": {"Content-Type": "application/json"},
        },
        "unknown-refresh-token": {
            "method": "POST",
            "url": "/auth/refresh",
            "json": {"refresh_token": secret},
        },
        "oversized-refresh-token": {
            "method": "POST",
            "url": "/auth/refresh",
            "json": {"refresh_token": secret * 20},
        },
        "garbage-bearer": {
            "method": "GET",
            "url": "/auth/me",
            "headers": {"Authorization": f"Bearer {secret}"},
        },
        "unknown-api-key": {
            "method": "GET",
            "url": "/v1/models",
            "headers": {"Authorization": f"Bearer sk-omni-{secret}"},
        },
    }


@pytest.mark.parametrize("case", list(_failing_requests("s", "e@example.com")))
async def test_error_answers_never_repeat_a_secret(
    client: httpx.AsyncClient, alice: TestUser, case: str
) -> None:
    secret = _secret()
    request = _failing_requests(secret, alice.email)[case]
    r = await client.request(**request)
    assert 400 <= r.status_code < 500, r.text
    assert isinstance(r.json()["detail"], str)
    assert secret not in r.text
    assert secret not in str(r.headers)


async def test_a_wrong_current_password_is_not_repeated(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    secret = _secret()
    r = await client.put(
        "/users/me/",
        json={"password": "a brand new passphrase", "current_password": secret},
        headers=alice.headers,
    )
    assert r.status_code == 400, r.text
    assert secret not in r.text
