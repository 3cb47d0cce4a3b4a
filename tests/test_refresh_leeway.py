"""Refresh-token reuse leeway (Okta's grace period, Auth0's reuse interval): a rotated refresh
token presented again within ``OMNICHAT_REFRESH_REUSE_LEEWAY_S`` of its rotation (a retry after
a timeout, two tabs, a double submit) gets a valid pair of the same login and revokes nothing,
also when the requests race on two workers; after the leeway, reuse ends the login."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest

from omnichat.container import Container
from tests.conftest import TestUser, age_rotation, make_settings, register_user
from tests.test_document_originals import started_app

RACERS = 5


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def _me_status(client: httpx.AsyncClient, access_token: str) -> int:
    r = await client.get("/auth/me", headers={"Authorization": f"Bearer {access_token}"})
    return r.status_code


def _family(access_token: str) -> str:
    return str(jwt.decode(access_token, options={"verify_signature": False})["fam"])


async def _assert_pairs_of_one_live_login(
    client: httpx.AsyncClient, user: TestUser, responses: list[httpx.Response]
) -> None:
    """Every response is a working pair of ``user``'s login, and each refresh token rotates."""
    assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses]
    pairs = [r.json() for r in responses]
    assert len({p["refresh_token"] for p in pairs}) == len(pairs)
    assert {_family(p["access_token"]) for p in pairs} == {_family(user.access_token)}
    assert await _me_status(client, user.access_token) == 200
    for pair in pairs:
        assert await _me_status(client, pair["access_token"]) == 200
        assert (await _refresh(client, pair["refresh_token"])).status_code == 200


async def test_a_retried_refresh_within_the_leeway_gets_a_pair_of_the_same_login(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    first = await _refresh(client, alice.refresh_token)
    again = await _refresh(client, alice.refresh_token)  # the retry of a timed-out request
    await _assert_pairs_of_one_live_login(client, alice, [first, again])
    # Bob's login is a stranger to all of it.
    assert (await _refresh(client, bob.refresh_token)).status_code == 200


async def test_concurrent_refreshes_with_one_token_all_succeed(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    responses = await asyncio.gather(
        *(_refresh(client, user.refresh_token) for user in (alice, bob) for _ in range(RACERS))
    )
    await _assert_pairs_of_one_live_login(client, alice, list(responses[:RACERS]))
    await _assert_pairs_of_one_live_login(client, bob, list(responses[RACERS:]))


async def test_reuse_after_the_leeway_still_revokes_the_login(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, container: Container
) -> None:
    rotated = (await _refresh(client, alice.refresh_token)).json()
    leeway = container.settings.refresh_reuse_leeway_s
    await age_rotation(container.settings, alice.refresh_token, leeway + 1)
    r = await _refresh(client, alice.refresh_token)
    assert r.status_code == 401
    assert "reuse" in r.json()["detail"].lower()
    assert (await _refresh(client, rotated["refresh_token"])).status_code == 401
    assert await _me_status(client, rotated["access_token"]) == 401
    assert await _me_status(client, bob.access_token) == 200


async def test_a_token_reused_within_the_leeway_then_later_revokes(
    client: httpx.AsyncClient, alice: TestUser, container: Container
) -> None:
    """The leeway runs from the first rotation: reuses within it do not extend it."""
    await _refresh(client, alice.refresh_token)
    leeway = container.settings.refresh_reuse_leeway_s
    await age_rotation(container.settings, alice.refresh_token, leeway / 2)
    assert (await _refresh(client, alice.refresh_token)).status_code == 200
    await age_rotation(container.settings, alice.refresh_token, leeway + 1)
    assert (await _refresh(client, alice.refresh_token)).status_code == 401
    assert await _me_status(client, alice.access_token) == 401


# -- two workers on one database ------------------------------------------------------------------


@pytest.fixture
async def two_workers(
    database_url: str, redis_url: str, tmp_path: Path, app: object
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two apps (each its own engine, pool and SQLite writer) on the test database, as two
    worker processes are; ``app``: its migrations are applied."""
    settings = make_settings(database_url, tmp_path / "data", redis_url=redis_url)
    async for _, first in started_app(settings):
        async for _, second in started_app(settings):
            yield first, second


async def test_refreshes_racing_on_two_workers_keep_the_login(
    two_workers: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    first, second = two_workers
    alice = await register_user(first, "alice")
    bob = await register_user(second, "bob")
    for user in (alice, bob):
        responses = await asyncio.gather(
            *(
                _refresh(first if index % 2 else second, user.refresh_token)
                for index in range(2 * RACERS)
            )
        )
        await _assert_pairs_of_one_live_login(first, user, list(responses))
        assert await _me_status(second, responses[0].json()["access_token"]) == 200


# -- no leeway ------------------------------------------------------------------------------------


@pytest.fixture
async def strict_client(
    database_url: str, tmp_path: Path, app: object
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, tmp_path / "data", refresh_reuse_leeway_s=0)
    async for _, client in started_app(settings):
        yield client


async def test_no_leeway_makes_any_reuse_revoke_the_login(strict_client: httpx.AsyncClient) -> None:
    alice = await register_user(strict_client, "alice")
    bob = await register_user(strict_client, "bob")
    responses = await asyncio.gather(
        *(_refresh(strict_client, alice.refresh_token) for _ in range(RACERS))
    )
    assert sorted(r.status_code for r in responses) == [200] + [401] * (RACERS - 1)
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert await _me_status(strict_client, winner["access_token"]) == 401
    assert (await _refresh(strict_client, winner["refresh_token"])).status_code == 401
    assert (await _refresh(strict_client, bob.refresh_token)).status_code == 200
