"""Per-client-address limits on logins and registrations, on every dialect's routes: past
``OMNICHAT_LOGIN_ADDRESS_LIMIT`` / ``OMNICHAT_REGISTER_ADDRESS_LIMIT`` an address gets 429 with
``Retry-After`` (shared between workers through Redis), other addresses are untouched, and the
per-email brake on failed logins still holds against many addresses."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from omnichat.app import create_app
from omnichat.cli import migrate
from tests.conftest import PASSWORD, lifespan_of, make_settings, unique_email
from tests.route_table import endpoints

LOGINS = 3
REGISTRATIONS = 2
LIMITS = {
    "login_address_limit": f"{LOGINS}/minute",
    "register_address_limit": f"{REGISTRATIONS}/minute",
}

Attempt = Callable[[httpx.AsyncClient, str, str], Any]


async def _json_login(path: str, client: httpx.AsyncClient, email: str, password: str) -> Any:
    return await client.post(path, json={"email": email, "password": password})


async def _form_login(client: httpx.AsyncClient, email: str, password: str) -> Any:
    return await client.post("/token", data={"username": email, "password": password})


LOGIN_ROUTES: dict[str, Attempt] = {
    "POST /auth/login": lambda c, e, p: _json_login("/auth/login", c, e, p),
    "POST /api/auth/login": lambda c, e, p: _json_login("/api/auth/login", c, e, p),
    "POST /token": _form_login,
}
REGISTER_PATHS = ["/auth/register", "/api/auth/register", "/users/", "/users"]


def _address() -> str:
    """A client address of its own: the Redis windows outlive a test."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


class Site:
    """One app, reached from as many client addresses as a test likes."""

    def __init__(self, application: FastAPI) -> None:
        self.application = application

    @asynccontextmanager
    async def client_from(self, address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=self.application, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@asynccontextmanager
async def _site(settings: Any) -> AsyncIterator[Site]:
    application = create_app(settings)
    manager: LifespanManager = lifespan_of(application)
    async with manager:
        yield Site(application)


@pytest.fixture
async def site(database_url: str, tmp_path: Path, app: FastAPI) -> AsyncIterator[Site]:
    settings = make_settings(database_url, tmp_path / "data", **LIMITS)
    await migrate(settings)
    async with _site(settings) as started:
        yield started


async def _registered(site: Site) -> str:
    email = unique_email("throttle")
    async with site.client_from(_address()) as client:
        r = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
    return email


def _assert_throttled(r: httpx.Response, what: str) -> None:
    assert r.status_code == 429, r.text
    assert set(r.json()) == {"detail"}
    assert what in r.json()["detail"]
    assert 1 <= int(r.headers["retry-after"]) <= 60


def test_every_login_and_registration_route_is_covered(app: FastAPI) -> None:
    """A new login or registration route fails this until the tests here cover it."""
    pattern = re.compile(r"login|register|^/token$|^/users/?$")
    found = {e.id for e in endpoints(app) if e.method == "POST" and pattern.search(e.path)}
    assert found == set(LOGIN_ROUTES) | {f"POST {path}" for path in REGISTER_PATHS}


@pytest.mark.parametrize("route", list(LOGIN_ROUTES))
async def test_logins_from_one_address_are_limited(site: Site, route: str) -> None:
    attempt = LOGIN_ROUTES[route]
    alice, bob = await _registered(site), await _registered(site)
    crowded, other = _address(), _address()
    async with site.client_from(crowded) as client:
        # Right and wrong passwords alike: each one costs an argon2 hash.
        for index in range(LOGINS):
            r = await attempt(client, alice, PASSWORD if index == 0 else "wrong password 1")
            assert r.status_code == (200 if index == 0 else 401), r.text
        for email in (alice, bob):  # the address is throttled, whatever the account
            _assert_throttled(await attempt(client, email, PASSWORD), "from this address")
    async with site.client_from(other) as client:
        for email in (alice, bob):
            assert (await attempt(client, email, PASSWORD)).status_code == 200


async def test_the_login_limit_spans_every_dialect(site: Site) -> None:
    alice = await _registered(site)
    async with site.client_from(_address()) as client:
        for attempt in LOGIN_ROUTES.values():
            assert (await attempt(client, alice, PASSWORD)).status_code == 200
        for attempt in LOGIN_ROUTES.values():
            _assert_throttled(await attempt(client, alice, PASSWORD), "login attempts")


@pytest.mark.parametrize("path", REGISTER_PATHS)
async def test_registrations_from_one_address_are_limited(site: Site, path: str) -> None:
    taken = await _registered(site)
    async with site.client_from(_address()) as client:
        for _ in range(REGISTRATIONS):
            body = {"email": unique_email("reg"), "password": PASSWORD}
            assert (await client.post(path, json=body)).status_code in (200, 201)
        # Nor does it learn any more whether an address is registered.
        for email in (taken, unique_email("reg")):
            r = await client.post(path, json={"email": email, "password": PASSWORD})
            _assert_throttled(r, "registrations")
    async with site.client_from(_address()) as client:
        r = await client.post(path, json={"email": unique_email("reg"), "password": PASSWORD})
        assert r.status_code in (200, 201)
        r = await client.post(path, json={"email": taken, "password": PASSWORD})
        assert r.status_code == 400


async def test_the_per_email_brake_still_holds_across_addresses(site: Site) -> None:
    """Ten failures for one email from ten addresses (none near its own limit) still brake
    the email, for the right password from a fresh address too; other emails are free."""
    alice, bob = await _registered(site), await _registered(site)
    for _ in range(10):  # OMNICHAT_FAILED_LOGIN_LIMIT: 10 per 15 minutes
        async with site.client_from(_address()) as client:
            r = await client.post("/auth/login", json={"email": alice, "password": "nope nope 1"})
            assert r.status_code == 401
    async with site.client_from(_address()) as client:
        r = await client.post("/auth/login", json={"email": alice, "password": PASSWORD})
        assert r.status_code == 429
        assert "account" in r.json()["detail"]
        r = await client.post("/auth/login", json={"email": bob, "password": PASSWORD})
        assert r.status_code == 200


async def test_the_address_limits_are_shared_between_workers(
    database_url: str, redis_url: str, tmp_path: Path, app: FastAPI
) -> None:
    settings = make_settings(database_url, tmp_path / "data", redis_url=redis_url, **LIMITS)
    async with _site(settings) as first, _site(settings) as second:
        alice = await _registered(first)
        address = _address()
        async with first.client_from(address) as a, second.client_from(address) as b:
            for index in range(LOGINS):
                client = a if index % 2 == 0 else b
                r = await client.post("/auth/login", json={"email": alice, "password": PASSWORD})
                assert r.status_code == 200, r.text
            for client in (a, b):
                r = await client.post("/auth/login", json={"email": alice, "password": PASSWORD})
                _assert_throttled(r, "login attempts")
            for index in range(REGISTRATIONS):
                client = b if index % 2 == 0 else a
                body = {"email": unique_email("reg"), "password": PASSWORD}
                assert (await client.post("/auth/register", json=body)).status_code == 200
            for client in (a, b):
                body = {"email": unique_email("reg"), "password": PASSWORD}
                _assert_throttled(await client.post("/auth/register", json=body), "registrations")


def _ipv6_network() -> str:
    """A /64 of its own (the Redis windows outlive a test)."""
    return f"2001:db8:{random.randrange(65536):x}:{random.randrange(65536):x}"


async def test_ipv6_clients_count_by_their_64_network(site: Site) -> None:
    """A host holds a whole /64 and may use any address in it: logins and registrations from
    many addresses of one /64 are one client's; the next /64 is another client."""
    alice = await _registered(site)
    network, other = _ipv6_network(), _ipv6_network()
    for index in range(LOGINS):
        async with site.client_from(f"{network}::{index + 1:x}") as client:
            assert (await _json_login("/auth/login", client, alice, PASSWORD)).status_code == 200
    async with site.client_from(f"{network}:ffff:ffff:ffff:ffff") as client:
        _assert_throttled(
            await _json_login("/auth/login", client, alice, PASSWORD), "from this address"
        )
    for index in range(REGISTRATIONS):
        async with site.client_from(f"{other}::{index + 1:x}") as client:
            email = unique_email("v6")
            r = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
            assert r.status_code == 200, r.text
    async with site.client_from(f"{other}::beef") as client:
        r = await client.post(
            "/auth/register", json={"email": unique_email("v6"), "password": PASSWORD}
        )
        _assert_throttled(r, "registrations")
    async with site.client_from(f"{_ipv6_network()}::1") as client:  # another /64
        assert (await _json_login("/auth/login", client, alice, PASSWORD)).status_code == 200
