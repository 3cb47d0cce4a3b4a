"""Authorization matrix: another user's session or message id behaves exactly like a missing one
(404, same body) on every owner-scoped route, and nothing of the owner's changes; every protected
route refuses a missing or bad bearer token with 401 and ``WWW-Authenticate: Bearer``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import TestUser

# -- helpers --------------------------------------------------------------------------------------

JSON = dict[str, Any]


@dataclass(frozen=True)
class Route:
    """A route; ``{session}`` and ``{message}`` in the path and in body values are filled in."""

    method: str
    path: str
    body: JSON | None = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def render(self, session_id: str, message_id: str) -> tuple[str, JSON | None]:
        def fill(value: str) -> str:
            return value.format(session=session_id, message=message_id)

        path = fill(self.path)
        body = None
        if self.body is not None:
            body = {k: fill(v) if isinstance(v, str) else v for k, v in self.body.items()}
        return path, body


@dataclass(frozen=True)
class Seed:
    session_id: str
    message_id: str
    other_session_id: str


def route_id(route: Route) -> str:
    return route.id


def random_id() -> str:
    return str(uuid.uuid4())


async def call(
    client: httpx.AsyncClient,
    route: Route,
    headers: dict[str, str],
    session_id: str,
    message_id: str,
) -> httpx.Response:
    path, body = route.render(session_id, message_id)
    return await client.request(route.method, path, headers=headers, json=body)


async def seed_resources(client: httpx.AsyncClient, owner: TestUser) -> Seed:
    """Two sessions for ``owner``: one titled, with a user and an assistant message, one empty."""
    r = await client.post("/api/sessions", json={"title": "Owner's plans"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    session_id = r.json()["id"]
    message_id = ""
    for role, text in (("user", "my secret question"), ("assistant", "a private answer")):
        r = await client.post(
            "/api/chats",
            json={"message": text, "role": role, "session": session_id},
            headers=owner.headers,
        )
        assert r.status_code == 201, r.text
        message_id = message_id or r.json()["id"]
    r = await client.post("/sessions", json={"title": "Owner's second"}, headers=owner.headers)
    assert r.status_code == 200, r.text
    return Seed(session_id, message_id, r.json()["id"])


async def snapshot(client: httpx.AsyncClient, user: TestUser) -> JSON:
    """Everything ``user`` can see of their own data, through both dialects."""

    async def get(path: str) -> Any:
        r = await client.get(path, headers=user.headers)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
        return r.json()

    sessions = await get("/sessions")
    state: JSON = {
        "sessions": sessions,
        "express_sessions": await get("/api/sessions"),
        "details": {},
        "messages": {},
        "express_messages": {},
    }
    for session in sessions:
        sid = session["id"]
        state["details"][sid] = await get(f"/sessions/{sid}")
        state["messages"][sid] = await get(f"/sessions/{sid}/messages")
        state["express_messages"][sid] = await get(f"/api/chats/{sid}")
    return state


# -- owner-scoped routes --------------------------------------------------------------------------

OWNER_ROUTES = [
    # seed 000
    Route("GET", "/api/sessions/{session}"),
    Route("DELETE", "/api/sessions/{session}"),
    Route("GET", "/api/chats/{session}"),
    Route(
        "POST", "/api/chats", {"message": "injected by B", "role": "user", "session": "{session}"}
    ),
    Route("DELETE", "/api/chats/session/{session}"),
    Route("DELETE", "/api/chats/{message}"),
    # seeds 001 and 003
    Route("GET", "/sessions/{session}"),
    Route("PUT", "/sessions/{session}", {"title": "renamed by B"}),
    Route("DELETE", "/sessions/{session}"),
    Route("GET", "/sessions/{session}/messages"),
]


@pytest.mark.parametrize("route", OWNER_ROUTES, ids=route_id)
async def test_other_users_resource_is_404_like_a_missing_one(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, route: Route
) -> None:
    seed = await seed_resources(client, alice)
    before = await snapshot(client, alice)
    assert len(before["sessions"]) == 2
    assert len(before["messages"][seed.session_id]) == 2

    foreign = await call(client, route, bob.headers, seed.session_id, seed.message_id)
    missing = await call(client, route, bob.headers, random_id(), random_id())

    assert foreign.status_code == 404, foreign.text
    assert missing.status_code == 404, missing.text
    assert foreign.json() == missing.json()
    assert isinstance(foreign.json()["detail"], str)
    assert foreign.headers["content-type"] == missing.headers["content-type"]

    # Nothing of Alice's changed, and Bob gained nothing.
    assert await snapshot(client, alice) == before
    assert (await client.get("/sessions", headers=bob.headers)).json() == []

    # The ids were real: the owner gets a success on the very same request.
    own = await call(client, route, alice.headers, seed.session_id, seed.message_id)
    assert own.status_code in (200, 201, 204), own.text


@pytest.mark.parametrize("route", OWNER_ROUTES, ids=route_id)
async def test_owner_gets_same_404_for_missing_ids(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, route: Route
) -> None:
    """The 404 Bob sees for Alice's id is the one Alice sees for a missing id of her own."""
    seed = await seed_resources(client, alice)
    foreign = await call(client, route, bob.headers, seed.session_id, seed.message_id)
    own_missing = await call(client, route, alice.headers, random_id(), random_id())
    assert own_missing.status_code == foreign.status_code == 404
    assert own_missing.json() == foreign.json()


async def test_message_of_other_user_in_own_session_id_space(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    """Bob, with a session of his own, still cannot delete Alice's message by id."""
    seed = await seed_resources(client, alice)
    await seed_resources(client, bob)
    before = await snapshot(client, alice)
    r = await client.delete(f"/api/chats/{seed.message_id}", headers=bob.headers)
    assert r.status_code == 404
    assert r.json() == {"detail": "Message not found"}
    assert await snapshot(client, alice) == before


# -- list endpoints -------------------------------------------------------------------------------

LIST_PATHS = ["/api/sessions", "/sessions", "/sessions/", "/sessions?limit=1000&offset=0"]


@pytest.mark.parametrize("path", LIST_PATHS)
async def test_list_never_includes_other_users_sessions(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, path: str
) -> None:
    alice_seed = await seed_resources(client, alice)
    bob_seed = await seed_resources(client, bob)
    alice_ids = {alice_seed.session_id, alice_seed.other_session_id}
    bob_ids = {bob_seed.session_id, bob_seed.other_session_id}

    r = await client.get(path, headers=bob.headers)
    assert r.status_code == 200
    listed = r.json()
    assert {s["id"] for s in listed} == bob_ids
    user_key = "user" if path.startswith("/api/") else "user_id"
    assert {s[user_key] for s in listed} == {bob.id}

    r = await client.get(path, headers=alice.headers)
    assert {s["id"] for s in r.json()} == alice_ids


async def test_list_is_empty_for_new_user_while_others_have_sessions(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    await seed_resources(client, alice)
    for path in ("/api/sessions", "/sessions", "/sessions/"):
        r = await client.get(path, headers=bob.headers)
        assert r.status_code == 200
        assert r.json() == []


# -- authentication -------------------------------------------------------------------------------

PROTECTED_ROUTES = [
    Route("GET", "/api/auth/me"),
    Route("GET", "/users/me/"),
    Route("PUT", "/users/me/", {"first_name": "Mallory"}),
    Route("GET", "/auth/me"),
    Route("POST", "/auth/logout"),
    Route("POST", "/api/sessions", {"title": "t"}),
    Route("GET", "/api/sessions"),
    Route("GET", "/api/sessions/{session}"),
    Route("DELETE", "/api/sessions/{session}"),
    Route("GET", "/api/chats/{session}"),
    Route("POST", "/api/chats", {"message": "hi", "role": "user", "session": "{session}"}),
    Route("DELETE", "/api/chats/session/{session}"),
    Route("DELETE", "/api/chats/{message}"),
    Route("POST", "/sessions", {"title": "t"}),
    Route("POST", "/sessions/", {"title": "t"}),
    Route("GET", "/sessions"),
    Route("GET", "/sessions/"),
    Route("GET", "/sessions/{session}"),
    Route("PUT", "/sessions/{session}", {"title": "renamed"}),
    Route("DELETE", "/sessions/{session}"),
    Route("GET", "/sessions/{session}/messages"),
]


def _forged_token(key: str) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": random_id(),
        "fam": random_id(),
        "ver": 0,
        "jti": random_id(),
        "typ": "access",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    return jwt.encode(claims, key, algorithm="HS256")


BAD_AUTH: dict[str, dict[str, str]] = {
    "no-header": {},
    "garbage-token": {"Authorization": "Bearer not-a-jwt"},
    "empty-bearer": {"Authorization": "Bearer "},
    "three-dots": {"Authorization": "Bearer a.b.c"},
    "wrong-signing-key": {
        "Authorization": f"Bearer {_forged_token('another-secret-key-0123456789abcdefghij')}"
    },
    "basic-scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
}


@pytest.mark.parametrize("auth", list(BAD_AUTH), ids=list(BAD_AUTH))
@pytest.mark.parametrize("route", PROTECTED_ROUTES, ids=route_id)
async def test_protected_route_without_valid_token_is_401(
    client: httpx.AsyncClient, route: Route, auth: str
) -> None:
    r = await call(client, route, BAD_AUTH[auth], random_id(), random_id())
    assert r.status_code == 401, r.text
    body = r.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("route", [r for r in PROTECTED_ROUTES if r.method != "GET"], ids=route_id)
async def test_unauthenticated_writes_change_nothing(
    client: httpx.AsyncClient, alice: TestUser, route: Route
) -> None:
    """Aimed at Alice's real ids, a write without a valid token leaves her data as it was."""
    seed = await seed_resources(client, alice)
    before = await snapshot(client, alice)
    me_before = (await client.get("/auth/me", headers=alice.headers)).json()
    for headers in (BAD_AUTH["no-header"], BAD_AUTH["garbage-token"]):
        r = await call(client, route, headers, seed.session_id, seed.message_id)
        assert r.status_code == 401, r.text
    assert await snapshot(client, alice) == before
    assert (await client.get("/auth/me", headers=alice.headers)).json() == me_before
