"""HTTP-level behaviour: CORS for browser front ends, security headers, password handling."""

from __future__ import annotations

import re

import httpx
import pytest

from omnichat.auth import passwords
from tests.conftest import TestUser, UserFactory
from tests.route_table import app_endpoints

ROUTE_TABLE = [e for e in app_endpoints() if not e.mount]


def _template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")


@pytest.mark.parametrize("path", sorted({e.path for e in ROUTE_TABLE}))
async def test_405_allow_names_every_method_of_the_path(
    client: httpx.AsyncClient, path: str
) -> None:
    """RFC 9110: ``Allow`` lists what the resource supports, across all the routes serving its
    path (e.g. GET, PUT and DELETE /sessions/{id}), not only the first route matched."""
    url = re.sub(r"\{[^}]+\}", "x", path)
    expected = {e.method for e in ROUTE_TABLE if _template(e.path).match(url)}
    r = await client.request("PATCH", url)
    assert r.status_code == 405, r.text
    assert set(r.headers["allow"].split(", ")) == expected
    assert isinstance(r.json()["detail"], str)


async def test_cors_preflight_allows_bearer_requests(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/api/sessions",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] in ("*", "http://localhost:3000")
    assert "authorization" in r.headers["access-control-allow-headers"].lower()


async def test_cors_on_simple_request(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"Origin": "http://localhost:5173"})
    assert r.headers["access-control-allow-origin"] == "*"


async def test_nosniff_header(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).headers["x-content-type-options"] == "nosniff"


async def test_long_passwords_are_not_truncated(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    password = "p" * 127 + "1"
    user = await make_user("long", password=password)
    r = await client.post("/auth/login", json={"email": user.email, "password": "p" * 127 + "2"})
    assert r.status_code == 401
    r = await client.post("/auth/login", json={"email": user.email, "password": password})
    assert r.status_code == 200


async def test_token_with_non_email_username_is_401(client: httpx.AsyncClient) -> None:
    r = await client.post("/token", data={"username": "not-an-email", "password": "whatever12"})
    assert r.status_code == 401
    assert r.json() == {"detail": "Incorrect username or password"}


async def test_unknown_email_does_the_same_hashing_work(
    client: httpx.AsyncClient, alice: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Login with an unknown email verifies a dummy argon2 hash, so it costs what a wrong
    password costs (timings are measured in benchmarks/, not asserted here)."""
    verified: list[str] = []
    real = passwords._hasher

    class CountingHasher:
        def verify(self, hash_: str, password: str) -> bool:
            verified.append(hash_)
            return real.verify(hash_, password)

        def check_needs_rehash(self, hash_: str) -> bool:
            return real.check_needs_rehash(hash_)

    monkeypatch.setattr(passwords, "_hasher", CountingHasher())
    await client.post("/auth/login", json={"email": alice.email, "password": "wrong-password-1"})
    await client.post("/auth/login", json={"email": "nobody@example.com", "password": "wrong-pw-1"})
    assert len(verified) == 2
    # Both were full argon2id verifications with the same parameters.
    assert all(h.startswith("$argon2id$v=19$m=19456,t=2,p=1$") for h in verified)


async def test_failed_logins_are_throttled_per_email(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user("guessed")
    other = await make_user("bystander")
    # Successful logins never count.
    for _ in range(12):
        r = await client.post("/auth/login", json={"email": user.email, "password": user.password})
        assert r.status_code == 200
    for _ in range(10):
        r = await client.post(
            "/auth/login", json={"email": user.email, "password": "wrong guess 1"}
        )
        assert r.status_code == 401
    # The window is full: even the right password waits, through every dialect, any case.
    for path, kwargs in (
        ("/auth/login", {"json": {"email": user.email, "password": user.password}}),
        ("/api/auth/login", {"json": {"email": user.email.upper(), "password": user.password}}),
        ("/token", {"data": {"username": user.email, "password": user.password}}),
    ):
        r = await client.post(path, **kwargs)
        assert r.status_code == 429, path
        assert int(r.headers["retry-after"]) >= 1
        assert "failed logins" in r.json()["detail"]
    # Other accounts are not affected, and tokens already issued still work.
    r = await client.post("/auth/login", json={"email": other.email, "password": other.password})
    assert r.status_code == 200
    assert (await client.get("/auth/me", headers=user.headers)).status_code == 200
