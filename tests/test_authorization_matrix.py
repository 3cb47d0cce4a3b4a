"""Authorization matrix, generated from the app's own route table (every route and method, in the
schema or not), so that a new route is covered the day it is added, or fails here:

- anonymous: a protected route answers 401 with ``WWW-Authenticate: Bearer`` (also to a missing,
  malformed, forged or non-Bearer token) and changes nothing; the few public routes (``PUBLIC``)
  answer a success;
- owner: a real success on a real object of their own; once an object is deleted every route on it
  answers 404;
- another user: a route naming one of the owner's objects (in its path or its body) answers 404,
  exactly like a missing id, and nothing of the owner's changes.

Every path parameter is filled by its name (``PATH_VALUES``) and every route with a body has a
request rule (``RULES``): a route this file has no rule for fails ``test_every_route_has_rules``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from tests.conftest import PASSWORD, TestUser, unique_email
from tests.route_table import OWNED_PARAMETERS, Endpoint, app_endpoints, endpoints

JSON = dict[str, Any]
ENDPOINTS = app_endpoints()


def random_id() -> str:
    return str(uuid.uuid4())


def endpoint_id(endpoint: Endpoint) -> str:
    return endpoint.id


# -- what each route needs ------------------------------------------------------------------------

# Answered without credentials (HEAD goes with GET). Everything else must answer 401 to anonymous.
PUBLIC = {
    # accounts: registration, login and the refresh token (itself the credential)
    "POST /api/auth/register",
    "POST /api/auth/login",
    "POST /token",
    "POST /users",
    "POST /users/",
    "POST /auth/register",
    "POST /auth/login",
    "POST /auth/refresh",
    # operations
    "GET /healthz",
    "GET /readyz",
    # the API's own documentation
    "GET /openapi.json",
    "GET /docs",
    "GET /docs/assets/{asset}",
    "GET /redoc",
    # the web UI: the page and its assets (it signs in through the API)
    "GET /",
    "GET /ui/{name}",
}


def is_public(endpoint: Endpoint) -> bool:
    method = "GET" if endpoint.method == "HEAD" else endpoint.method
    return endpoint.mount or f"{method} {endpoint.path}" in PUBLIC


@dataclass
class Request:
    json: Any = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None


@dataclass
class Context:
    """Builds requests for one identity's view of the owner's objects. The owner's objects are
    made on first use; with ``missing`` every object id is a fresh random one."""

    client: httpx.AsyncClient
    owner: TestUser | None
    missing: bool = False
    objects: dict[str, str] = field(default_factory=dict)

    async def id(self, kind: str) -> str:
        if self.missing or self.owner is None:
            return random_id()
        if kind not in self.objects:
            await CREATORS[kind](self, self.owner)
        return self.objects[kind]

    def with_missing_ids(self) -> Context:
        return Context(self.client, self.owner, missing=True)

    async def credentials(self) -> TestUser:
        assert self.owner is not None, "a rule that needs the owner's credentials"
        return self.owner

    async def fresh_refresh_token(self) -> str:
        user = await self.credentials()
        r = await self.client.post(
            "/auth/login", json={"email": user.email, "password": user.password}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["refresh_token"])


async def _create_session(ctx: Context, owner: TestUser) -> None:
    """A titled session holding a user message and an assistant reply (``message``)."""
    r = await ctx.client.post("/sessions", json={"title": "Owner's plans"}, headers=owner.headers)
    assert r.status_code == 200, r.text
    ctx.objects["session"] = r.json()["id"]
    for role, text in (("user", "my secret question"), ("assistant", "a private answer")):
        r = await ctx.client.post(
            "/api/chats",
            json={"message": text, "role": role, "session": ctx.objects["session"]},
            headers=owner.headers,
        )
        assert r.status_code == 201, r.text
        ctx.objects["message"] = r.json()["id"]


async def _create_document(ctx: Context, owner: TestUser) -> None:
    r = await ctx.client.post(
        "/upload/document",
        files={"file": ("plans.txt", b"The owner's plans: a lighthouse by the sea.", "text/plain")},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    ctx.objects["document"] = r.json()["id"]


async def _create_api_key(ctx: Context, owner: TestUser) -> None:
    r = await ctx.client.post("/api-keys", json={"name": "owner's key"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    ctx.objects["api_key"] = r.json()["id"]


CREATORS: dict[str, Callable[[Context, TestUser], Awaitable[None]]] = {
    "session": _create_session,
    "message": _create_session,
    "document": _create_document,
    "api_key": _create_api_key,
}
assert set(CREATORS) == set(OWNED_PARAMETERS.values())


Filler = Callable[[Context], Awaitable[str]]


def _owned(kind: str) -> Filler:
    async def fill(ctx: Context) -> str:
        return await ctx.id(kind)

    return fill


def _constant(value: str) -> Filler:
    async def fill(_: Context) -> str:
        return value

    return fill


# Every path parameter, by the endpoint's name for it.
PATH_VALUES: dict[str, Filler] = {
    **{name: _owned(kind) for name, kind in OWNED_PARAMETERS.items()},
    "name": _constant("index.html"),  # the web UI's assets
    "asset": _constant("swagger-ui-bundle.js"),  # the API docs' assets
    "path": _constant("index.html"),  # a file under a static mount
    "model": _constant("local:echo"),  # GET /v1/models/{model}: the offline chat model
}


@dataclass(frozen=True)
class Rule:
    """How to make a valid request to a route with a body; ``uses``: the kinds of the owner's
    objects the body names (another user must get 404 for them)."""

    build: Callable[[Context], Awaitable[Request]]
    uses: frozenset[str] = frozenset()


async def _register(_: Context) -> Request:
    return Request(json={"email": unique_email("new"), "password": PASSWORD, "username": "new"})


async def _login(ctx: Context) -> Request:
    user = await ctx.credentials()
    return Request(json={"email": user.email, "password": user.password})


async def _token(ctx: Context) -> Request:
    user = await ctx.credentials()
    return Request(data={"username": user.email, "password": user.password})


async def _refresh(ctx: Context) -> Request:
    return Request(json={"refresh_token": await ctx.fresh_refresh_token()})


async def _logout(_: Context) -> Request:
    return Request()  # the bearer token's own login


async def _profile(_: Context) -> Request:
    return Request(json={"first_name": "Renamed"})


async def _delete_account(_: Context) -> Request:
    return Request(json={"current_password": PASSWORD})


async def _title(_: Context) -> Request:
    return Request(json={"title": "a title"})


async def _add_message(ctx: Context) -> Request:
    return Request(json={"message": "hi", "role": "user", "session": await ctx.id("session")})


async def _chat_stream(ctx: Context) -> Request:
    return Request(json={"session_id": await ctx.id("session"), "prompt": "hi"})


async def _inference(ctx: Context) -> Request:
    return Request(json={"session_id": await ctx.id("session"), "query": "hi"})


async def _cohere(ctx: Context) -> Request:
    return Request(json={"session": await ctx.id("session"), "prompt": "hi"})


async def _api_key(_: Context) -> Request:
    return Request(json={"name": "ci"})


async def _completion(_: Context) -> Request:
    return Request(json={"model": "local:echo", "messages": [{"role": "user", "content": "hi"}]})


async def _embeddings(_: Context) -> Request:
    return Request(json={"model": "default", "input": ["hi", "there"]})


async def _upload(ctx: Context) -> Request:
    return Request(
        files={"file": ("notes.txt", b"Notes about the harbour soup.", "text/plain")},
        data={"session_id": await ctx.id("session")},
    )


SESSION = frozenset({"session"})
RULES: dict[str, Rule] = {
    "POST /api/auth/register": Rule(_register),
    "POST /api/auth/login": Rule(_login),
    "POST /token": Rule(_token),
    "POST /users": Rule(_register),
    "POST /users/": Rule(_register),
    "PUT /users/me": Rule(_profile),
    "PUT /users/me/": Rule(_profile),
    "DELETE /users/me": Rule(_delete_account),
    "DELETE /users/me/": Rule(_delete_account),
    "DELETE /auth/me": Rule(_delete_account),
    "DELETE /api/auth/me": Rule(_delete_account),
    "POST /auth/register": Rule(_register),
    "POST /auth/login": Rule(_login),
    "POST /auth/refresh": Rule(_refresh),
    "POST /auth/logout": Rule(_logout),
    "POST /api/sessions": Rule(_title),
    "POST /api/chats": Rule(_add_message, SESSION),
    "POST /sessions": Rule(_title),
    "POST /sessions/": Rule(_title),
    "PUT /sessions/{session_id}": Rule(_title),
    "POST /chat/stream": Rule(_chat_stream, SESSION),
    "POST /inference/query": Rule(_inference, SESSION),
    "POST /api/cohere/generate": Rule(_cohere, SESSION),
    "POST /api-keys": Rule(_api_key),
    "POST /v1/chat/completions": Rule(_completion),
    "POST /v1/embeddings": Rule(_embeddings),
    "POST /upload/document": Rule(_upload, SESSION),
}

# DELETE routes that empty an object and keep it (every other DELETE deletes what its path names).
CLEARS = {"DELETE /api/chats/session/{session_id}"}
# Deleting an object deletes these too.
CASCADES = {"session": {"session", "message"}}


def rule_of(endpoint: Endpoint) -> Rule | None:
    return RULES.get(endpoint.id)


def owned_kinds(endpoint: Endpoint) -> set[str]:
    """The kinds of the owner's objects a request to ``endpoint`` names, in its path or body."""
    rule = rule_of(endpoint)
    return endpoint.owned_kinds | set(rule.uses if rule else ())


async def build(endpoint: Endpoint, ctx: Context) -> tuple[str, Request]:
    values: dict[str, str] = {}
    for name, alias in endpoint.path_params:
        filler = PATH_VALUES.get(name)
        if filler is None:
            pytest.fail(f"{endpoint.id}: no value for path parameter {name!r}; add to PATH_VALUES")
        values[alias] = await filler(ctx)
    path = endpoint.path.format(**values)
    rule = rule_of(endpoint)
    if rule is None:
        if endpoint.body is not None:
            pytest.fail(f"{endpoint.id} takes a {endpoint.body} body; add a rule to RULES")
        return path, Request()
    return path, await rule.build(ctx)


async def send(
    endpoint: Endpoint, ctx: Context, headers: dict[str, str] | None = None
) -> httpx.Response:
    path, request = await build(endpoint, ctx)
    return await ctx.client.request(
        endpoint.method,
        path,
        json=request.json,
        data=request.data,
        files=request.files,
        headers=headers or {},
    )


async def snapshot(client: httpx.AsyncClient, user: TestUser) -> JSON:
    """Everything ``user`` can see of their own data, through every dialect."""

    async def get(path: str) -> Any:
        r = await client.get(path, headers=user.headers)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
        return r.json()

    sessions = await get("/sessions")
    state: JSON = {
        "me": await get("/auth/me"),
        "sessions": sessions,
        "express_sessions": await get("/api/sessions"),
        "documents": await get("/documents"),
        "api_keys": await get("/api-keys"),
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


def assert_success(endpoint: Endpoint, r: httpx.Response) -> None:
    assert 200 <= r.status_code < 300, f"{endpoint.id}: {r.status_code} {r.text[:500]}"


def assert_unauthorized(endpoint: Endpoint, r: httpx.Response) -> None:
    assert r.status_code == 401, f"{endpoint.id}: {r.status_code} {r.text[:500]}"
    body = r.json()
    assert set(body) == {"detail"} or endpoint.path.startswith("/v1/"), body
    assert isinstance(body["detail"], str)
    assert r.headers["www-authenticate"] == "Bearer"


# -- the rules cover the route table --------------------------------------------------------------


def test_every_route_has_rules() -> None:
    """A route this file cannot make a request for is a route nobody checks: name its path
    parameters in PATH_VALUES and give a route with a body a rule in RULES."""
    problems = []
    for endpoint in ENDPOINTS:
        for name, _ in endpoint.path_params:
            if name not in PATH_VALUES:
                problems.append(f"{endpoint.id}: path parameter {name!r} is not in PATH_VALUES")
        if endpoint.body is not None and endpoint.id not in RULES:
            problems.append(f"{endpoint.id}: a {endpoint.body} body and no entry in RULES")
    stale = set(RULES) - {e.id for e in ENDPOINTS}
    problems += [f"{rule}: in RULES, not a route" for rule in sorted(stale)]
    assert not problems, "\n".join(problems)


def test_route_table_is_the_apps(app: FastAPI) -> None:
    """The parametrized tests were collected from an app with the default settings; the app under
    test has the same routes."""
    assert endpoints(app) == ENDPOINTS


# -- anonymous ------------------------------------------------------------------------------------

PROTECTED = [e for e in ENDPOINTS if not is_public(e)]
PUBLIC_ENDPOINTS = [e for e in ENDPOINTS if is_public(e)]


@pytest.mark.parametrize("endpoint", PUBLIC_ENDPOINTS, ids=endpoint_id)
async def test_public_route_answers_anonymous(
    client: httpx.AsyncClient, alice: TestUser, endpoint: Endpoint
) -> None:
    r = await send(endpoint, Context(client, alice))
    assert_success(endpoint, r)


@pytest.mark.parametrize("endpoint", PROTECTED, ids=endpoint_id)
async def test_protected_route_is_401_for_anonymous_and_changes_nothing(
    client: httpx.AsyncClient, alice: TestUser, endpoint: Endpoint
) -> None:
    """Aimed at Alice's real objects, a request without a valid token is refused and changes
    nothing of hers."""
    ctx = Context(client, alice)
    await build(endpoint, ctx)  # Alice's objects exist before the snapshot
    before = await snapshot(client, alice)
    for headers in (BAD_AUTH["no-header"], BAD_AUTH["garbage-token"]):
        assert_unauthorized(endpoint, await send(endpoint, ctx, headers))
    assert await snapshot(client, alice) == before


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
    "unknown-api-key": {"Authorization": "Bearer sk-omni-0123456789abcdefghijklmnopqrstuv"},
}


@pytest.mark.parametrize("auth", list(BAD_AUTH), ids=list(BAD_AUTH))
@pytest.mark.parametrize("endpoint", PROTECTED, ids=endpoint_id)
async def test_protected_route_without_valid_token_is_401(
    client: httpx.AsyncClient, endpoint: Endpoint, auth: str
) -> None:
    r = await send(endpoint, Context(client, None), BAD_AUTH[auth])
    assert_unauthorized(endpoint, r)


# -- owner ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
async def test_owner_gets_a_real_success(
    client: httpx.AsyncClient, alice: TestUser, endpoint: Endpoint
) -> None:
    ctx = Context(client, alice)
    assert_success(endpoint, await send(endpoint, ctx, alice.headers))


DELETES = [
    e
    for e in ENDPOINTS
    if e.method == "DELETE" and e.owned_kinds and e.id not in CLEARS and not is_public(e)
]


@pytest.mark.parametrize("endpoint", DELETES, ids=endpoint_id)
async def test_deleted_object_is_404_on_every_route(
    client: httpx.AsyncClient, alice: TestUser, endpoint: Endpoint
) -> None:
    """Once deleted, the object (and what it held) is a 404 on every route that names it, the
    delete itself included."""
    ctx = Context(client, alice)
    assert_success(endpoint, await send(endpoint, ctx, alice.headers))
    gone = set().union(*(CASCADES.get(kind, {kind}) for kind in endpoint.owned_kinds))
    checked = []
    for other in ENDPOINTS:
        kinds = owned_kinds(other)
        if not kinds & gone or not kinds <= set(ctx.objects) or is_public(other):
            continue
        r = await send(other, ctx, alice.headers)
        assert r.status_code == 404, f"after {endpoint.id}, {other.id}: {r.status_code} {r.text}"
        checked.append(other.id)
    assert endpoint.id in checked


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.id in CLEARS], ids=endpoint_id)
async def test_clearing_keeps_the_object(
    client: httpx.AsyncClient, alice: TestUser, endpoint: Endpoint
) -> None:
    ctx = Context(client, alice)
    assert_success(endpoint, await send(endpoint, ctx, alice.headers))
    r = await client.get(f"/sessions/{ctx.objects['session']}/messages", headers=alice.headers)
    assert r.status_code == 200
    assert r.json() == []


# -- another user ---------------------------------------------------------------------------------

FOREIGN = [e for e in ENDPOINTS if owned_kinds(e) and not is_public(e)]


async def _nothing_of_theirs(client: httpx.AsyncClient, user: TestUser) -> None:
    for path in ("/sessions", "/api/sessions", "/documents"):
        r = await client.get(path, headers=user.headers)
        assert r.status_code == 200
        assert r.json() == [], path


@pytest.mark.parametrize("endpoint", FOREIGN, ids=endpoint_id)
async def test_other_users_object_is_404_like_a_missing_one(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser, endpoint: Endpoint
) -> None:
    ctx = Context(client, alice)
    await build(endpoint, ctx)  # Alice's objects exist before the snapshot
    before = await snapshot(client, alice)

    foreign = await send(endpoint, ctx, bob.headers)
    missing = await send(endpoint, ctx.with_missing_ids(), bob.headers)
    own_missing = await send(endpoint, ctx.with_missing_ids(), alice.headers)

    assert foreign.status_code == 404, f"{endpoint.id}: {foreign.status_code} {foreign.text}"
    assert missing.status_code == own_missing.status_code == 404
    assert foreign.json() == missing.json() == own_missing.json()
    assert isinstance(foreign.json()["detail"], str)
    assert foreign.headers["content-type"] == missing.headers["content-type"]

    # Nothing of Alice's changed, and Bob gained nothing.
    assert await snapshot(client, alice) == before
    await _nothing_of_theirs(client, bob)

    # The ids were real: the owner gets a success on the very same request.
    assert_success(endpoint, await send(endpoint, ctx, alice.headers))


# -- hand-made cases the route table cannot express -----------------------------------------------


@dataclass(frozen=True)
class Seed:
    session_id: str
    message_id: str
    other_session_id: str


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


async def test_deleted_api_key_stops_authenticating(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    r = await client.post("/api-keys", json={"name": "soon gone"}, headers=alice.headers)
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    as_key = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/auth/me", headers=as_key)).status_code == 200
    assert (await client.delete(f"/api-keys/{key_id}", headers=alice.headers)).status_code == 204
    r = await client.get("/auth/me", headers=as_key)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


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
