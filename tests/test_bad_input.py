"""Bad input gets a clear 4xx with ``{"detail": <string>}``: never a 500, never a partial write.

The ``client`` here does not re-raise application errors, so a server error shows up as the
500 response a real client would get rather than as an exception inside the test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from omnichat.app import create_app
from tests.conftest import (
    PASSWORD,
    TestUser,
    UserFactory,
    lifespan_of,
    login_headers,
    make_settings,
    unique_email,
)

# -- helpers --------------------------------------------------------------------------------------

JSON_HEADERS = {"Content-Type": "application/json"}
DEFAULT_MAX_REQUEST_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_TITLE_CHARS = 200
DEFAULT_MAX_MESSAGE_CHARS = 100_000
SMALL_MAX_MESSAGE_CHARS = 50
SMALL_MAX_TITLE_CHARS = 10
SMALL_MAX_REQUEST_BYTES = 4096


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def small_client(
    app: FastAPI, database_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same (already migrated) database, with small configured limits."""
    settings = make_settings(
        database_url,
        tmp_path,
        max_message_chars=SMALL_MAX_MESSAGE_CHARS,
        max_title_chars=SMALL_MAX_TITLE_CHARS,
        max_request_bytes=SMALL_MAX_REQUEST_BYTES,
    )
    application = create_app(settings)
    async with lifespan_of(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def assert_error(r: httpx.Response, status: int | tuple[int, ...]) -> str:
    """The response has one of the given statuses and a non-empty string ``detail``."""
    allowed = (status,) if isinstance(status, int) else status
    assert r.status_code in allowed, f"{r.status_code}: {r.text[:500]}"
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()["detail"]
    assert isinstance(detail, str)
    assert detail
    return detail


async def new_session(
    client: httpx.AsyncClient, headers: dict[str, str], title: str | None = "Kept"
) -> str:
    r = await client.post("/api/sessions", json={"title": title}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def add_message(
    client: httpx.AsyncClient, headers: dict[str, str], session_id: str, text: str = "hello"
) -> str:
    r = await client.post(
        "/api/chats",
        json={"message": text, "role": "user", "session": session_id},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def sessions_of(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await client.get("/sessions", headers=headers)
    assert r.status_code == 200, r.text
    sessions: list[dict[str, Any]] = r.json()
    return sessions


async def messages_of(
    client: httpx.AsyncClient, headers: dict[str, str], session_id: str
) -> list[dict[str, Any]]:
    r = await client.get(f"/sessions/{session_id}/messages", headers=headers)
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()
    return messages


async def state_of(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """All of a user's sessions (titles, timestamps) and messages, and their profile."""
    sessions = await sessions_of(client, headers)
    me = await client.get("/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    return {
        "me": me.json(),
        "sessions": sessions,
        "messages": {s["id"]: await messages_of(client, headers, s["id"]) for s in sessions},
    }


def title_of(sessions: list[dict[str, Any]], session_id: str) -> str:
    return next(str(s["title"]) for s in sessions if s["id"] == session_id)


# -- malformed JSON bodies ------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonEndpoint:
    method: str
    path: str  # "{session}" is replaced by a session of the caller's
    auth: bool
    optional_body: bool = False

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


JSON_ENDPOINTS = [
    JsonEndpoint("POST", "/api/auth/register", auth=False),
    JsonEndpoint("POST", "/api/auth/login", auth=False),
    JsonEndpoint("POST", "/users/", auth=False),
    JsonEndpoint("PUT", "/users/me/", auth=True),
    JsonEndpoint("POST", "/auth/register", auth=False),
    JsonEndpoint("POST", "/auth/login", auth=False),
    JsonEndpoint("POST", "/auth/refresh", auth=False),
    JsonEndpoint("POST", "/auth/logout", auth=True, optional_body=True),
    JsonEndpoint("POST", "/api/sessions", auth=True, optional_body=True),
    JsonEndpoint("POST", "/api/chats", auth=True),
    JsonEndpoint("POST", "/sessions", auth=True, optional_body=True),
    JsonEndpoint("POST", "/sessions/", auth=True, optional_body=True),
    JsonEndpoint("PUT", "/sessions/{session}", auth=True),
]

MALFORMED_BODIES: dict[str, bytes] = {
    "truncated-object": b"{bad",
    "unterminated": b'{"title": "x"',
    "trailing-comma": b'{"title": "x",}',
    "single-quotes": b"{'title': 'x'}",
    "array": b"[]",
    "string": b'"str"',
    "number": b"42",
    "null": b"null",
    "empty": b"",
}
# With no body (or JSON null) these endpoints use their defaults: a valid request.
NO_BODY = {"null", "empty"}

MALFORMED_CASES = [
    pytest.param(endpoint, name, id=f"{endpoint.id}-{name}")
    for endpoint in JSON_ENDPOINTS
    for name in MALFORMED_BODIES
    if not (endpoint.optional_body and name in NO_BODY)
]


@pytest.mark.parametrize(("endpoint", "body_name"), MALFORMED_CASES)
async def test_malformed_json_body_is_422(
    client: httpx.AsyncClient, endpoint: JsonEndpoint, body_name: str
) -> None:
    headers = dict(JSON_HEADERS)
    path = endpoint.path
    before: dict[str, Any] | None = None
    auth: dict[str, str] = {}
    if endpoint.auth:
        auth = await login_headers(client, "bad")
        session_id = await new_session(client, auth)
        await add_message(client, auth, session_id)
        path = path.format(session=session_id)
        headers |= auth
        before = await state_of(client, auth)

    r = await client.request(
        endpoint.method, path, content=MALFORMED_BODIES[body_name], headers=headers
    )
    assert_error(r, 422)

    if before is not None:
        assert await state_of(client, auth) == before


@pytest.mark.parametrize(
    "endpoint",
    [e for e in JSON_ENDPOINTS if e.method == "POST" and e.auth],
    ids=lambda e: e.id,
)
async def test_body_that_is_not_utf8_is_a_clear_4xx(
    client: httpx.AsyncClient, endpoint: JsonEndpoint
) -> None:
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth)
    before = await state_of(client, auth)
    body = b'{"title": "\xff\xfe", "message": "\xff", "role": "user", "session": "'
    body += session_id.encode() + b'"}'
    r = await client.request(
        endpoint.method, endpoint.path, content=body, headers=JSON_HEADERS | auth
    )
    # Like any other malformed JSON (FastAPI alone would answer 400 here).
    assert assert_error(r, 422) == "Malformed JSON body"
    assert await state_of(client, auth) == before


# -- POST /api/chats field validation ------------------------------------------------------------

BAD_MESSAGE_BODIES: dict[str, dict[str, Any]] = {
    "unknown-role": {"message": "hi", "role": "tool"},
    "uppercase-role": {"message": "hi", "role": "USER"},
    "empty-role": {"message": "hi", "role": ""},
    "numeric-role": {"message": "hi", "role": 1},
    "null-role": {"message": "hi", "role": None},
    "missing-role": {"message": "hi"},
    "missing-message": {"role": "user"},
    "null-message-and-content": {"message": None, "content": None, "role": "user"},
    "numeric-message": {"message": 42, "role": "user"},
    "object-message": {"message": {"text": "hi"}, "role": "user"},
    "missing-session": {"message": "hi", "role": "user", "session": None},
    "empty-session": {"message": "hi", "role": "user", "session": ""},
    "numeric-session": {"message": "hi", "role": "user", "session": 12345},
}


@pytest.mark.parametrize("case", list(BAD_MESSAGE_BODIES), ids=list(BAD_MESSAGE_BODIES))
async def test_bad_message_fields_are_422_and_store_nothing(
    client: httpx.AsyncClient, case: str
) -> None:
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth, title=None)
    before = await state_of(client, auth)
    body = {"session": session_id} | BAD_MESSAGE_BODIES[case]
    if body["session"] is None:
        del body["session"]
    r = await client.post("/api/chats", json=body, headers=auth)
    assert_error(r, 422)
    after = await state_of(client, auth)
    assert after == before
    assert after["messages"][session_id] == []
    assert title_of(after["sessions"], session_id) == "New Chat"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/sessions/{session}", {}),
        ("PUT", "/sessions/{session}", {"title": None}),
        ("PUT", "/sessions/{session}", {"title": 7}),
        ("PUT", "/sessions/{session}", {"title": ["a"]}),
        ("POST", "/api/sessions", {"title": 7}),
        ("POST", "/sessions", {"title": {"a": 1}}),
        ("PUT", "/users/me/", {"first_name": ""}),
        ("PUT", "/users/me/", {"username": "   "}),
        ("PUT", "/users/me/", {"first_name": "x" * 10_000}),
        ("POST", "/auth/refresh", {}),
        ("POST", "/auth/refresh", {"refresh_token": ""}),
        ("POST", "/auth/login", {"email": "a@example.com"}),
        ("POST", "/auth/login", {"password": PASSWORD}),
    ],
    ids=lambda v: str(v) if not isinstance(v, dict) else repr(v)[:40],
)
async def test_missing_or_mistyped_fields_are_422(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any]
) -> None:
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth)
    before = await state_of(client, auth)
    r = await client.request(method, path.format(session=session_id), json=body, headers=auth)
    assert_error(r, 422)
    assert await state_of(client, auth) == before


# -- titles and message content over the limits --------------------------------------------------

CREATE_SESSION_PATHS = ["/api/sessions", "/sessions", "/sessions/"]


@pytest.mark.parametrize("path", CREATE_SESSION_PATHS)
@pytest.mark.parametrize(
    "length", [DEFAULT_MAX_TITLE_CHARS + 1, 10_001, 1_000_000], ids=["limit+1", "wire+1", "1M"]
)
async def test_title_over_limit_creates_no_session(
    client: httpx.AsyncClient, path: str, length: int
) -> None:
    auth = await login_headers(client, "bad")
    await new_session(client, auth)
    before = await state_of(client, auth)
    r = await client.post(path, json={"title": "t" * length}, headers=auth)
    assert_error(r, 422)
    after = await state_of(client, auth)
    assert len(after["sessions"]) == 1
    assert after == before


@pytest.mark.parametrize("path", CREATE_SESSION_PATHS)
async def test_title_at_limit_is_accepted(client: httpx.AsyncClient, path: str) -> None:
    auth = await login_headers(client, "bad")
    title = "t" * DEFAULT_MAX_TITLE_CHARS
    r = await client.post(path, json={"title": title}, headers=auth)
    assert r.status_code in (200, 201), r.text
    assert r.json()["title"] == title
    assert len(await sessions_of(client, auth)) == 1


async def test_rename_over_limit_keeps_old_title(client: httpx.AsyncClient) -> None:
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth, title="Original")
    before = await state_of(client, auth)
    for length in (DEFAULT_MAX_TITLE_CHARS + 1, 10_001):
        r = await client.put(f"/sessions/{session_id}", json={"title": "t" * length}, headers=auth)
        assert_error(r, 422)
    after = await state_of(client, auth)
    assert after == before
    assert title_of(after["sessions"], session_id) == "Original"
    r = await client.put(
        f"/sessions/{session_id}", json={"title": "t" * DEFAULT_MAX_TITLE_CHARS}, headers=auth
    )
    assert r.status_code == 200


@pytest.mark.parametrize("field", ["message", "content"])
async def test_message_over_default_limit_stores_nothing(
    client: httpx.AsyncClient, field: str
) -> None:
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth, title=None)
    before = await state_of(client, auth)
    r = await client.post(
        "/api/chats",
        json={field: "m" * (DEFAULT_MAX_MESSAGE_CHARS + 1), "role": "user", "session": session_id},
        headers=auth,
    )
    detail = assert_error(r, 422)
    assert str(DEFAULT_MAX_MESSAGE_CHARS) in detail
    after = await state_of(client, auth)
    assert after == before
    assert title_of(after["sessions"], session_id) == "New Chat"


@pytest.mark.parametrize("field", ["message", "content"])
@pytest.mark.parametrize("role", ["user", "assistant", "system"])
async def test_message_over_configured_limit_stores_nothing(
    small_client: httpx.AsyncClient, field: str, role: str
) -> None:
    auth = await login_headers(small_client, "bad")
    session_id = await new_session(small_client, auth, title=None)
    before = await state_of(small_client, auth)
    r = await small_client.post(
        "/api/chats",
        json={field: "m" * (SMALL_MAX_MESSAGE_CHARS + 1), "role": role, "session": session_id},
        headers=auth,
    )
    detail = assert_error(r, 422)
    assert str(SMALL_MAX_MESSAGE_CHARS) in detail
    after = await state_of(small_client, auth)
    assert after == before
    assert after["messages"][session_id] == []
    assert title_of(after["sessions"], session_id) == "New Chat"


async def test_message_at_configured_limit_is_stored(small_client: httpx.AsyncClient) -> None:
    auth = await login_headers(small_client, "bad")
    session_id = await new_session(small_client, auth, title=None)
    text = "m" * SMALL_MAX_MESSAGE_CHARS
    r = await small_client.post(
        "/api/chats", json={"message": text, "role": "user", "session": session_id}, headers=auth
    )
    assert r.status_code == 201, r.text
    assert [m["content"] for m in await messages_of(small_client, auth, session_id)] == [text]


@pytest.mark.parametrize("path", CREATE_SESSION_PATHS)
async def test_title_over_configured_limit_creates_no_session(
    small_client: httpx.AsyncClient, path: str
) -> None:
    auth = await login_headers(small_client, "bad")
    r = await small_client.post(
        path, json={"title": "t" * (SMALL_MAX_TITLE_CHARS + 1)}, headers=auth
    )
    detail = assert_error(r, 422)
    assert str(SMALL_MAX_TITLE_CHARS) in detail
    assert await sessions_of(small_client, auth) == []
    r = await small_client.post(path, json={"title": "t" * SMALL_MAX_TITLE_CHARS}, headers=auth)
    assert r.status_code in (200, 201), r.text
    assert len(await sessions_of(small_client, auth)) == 1


# -- request bodies over max_request_bytes --------------------------------------------------------


def oversized_json(field: str, total_bytes: int, extra: dict[str, str]) -> bytes:
    """A well-formed JSON object of exactly ``total_bytes`` bytes, padded in ``field``."""
    head = b'{"' + field.encode() + b'": "'
    tail = b'"' + b"".join(f', "{k}": "{v}"'.encode() for k, v in extra.items()) + b"}"
    return head + b"a" * (total_bytes - len(head) - len(tail)) + tail


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@dataclass(frozen=True)
class BodyTarget:
    method: str
    path: str
    field: str
    auth: bool = True

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


BODY_TARGETS = [
    BodyTarget("POST", "/api/chats", "message"),
    BodyTarget("POST", "/api/sessions", "title"),
    BodyTarget("POST", "/sessions", "title"),
    BodyTarget("PUT", "/sessions/{session}", "title"),
    BodyTarget("POST", "/auth/register", "first_name", auth=False),
]


async def _send_oversized(
    client: httpx.AsyncClient, target: BodyTarget, total_bytes: int, *, streamed: bool
) -> tuple[httpx.Response, dict[str, str], dict[str, Any]]:
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth)
    await add_message(client, auth, session_id)
    before = await state_of(client, auth)
    extra = {"role": "user", "session": session_id}
    if not target.auth:
        extra = {"email": unique_email("big"), "password": PASSWORD}
    data = oversized_json(target.field, total_bytes, extra)
    assert len(data) == total_bytes
    headers = JSON_HEADERS | (auth if target.auth else {})
    path = target.path.format(session=session_id)
    content: bytes | AsyncIterator[bytes] = chunks(data) if streamed else data
    r = await client.request(target.method, path, content=content, headers=headers)
    if streamed:
        assert "content-length" not in r.request.headers
        assert r.request.headers["transfer-encoding"] == "chunked"
    else:
        assert r.request.headers["content-length"] == str(total_bytes)
    return r, auth, before


@pytest.mark.parametrize("target", BODY_TARGETS, ids=lambda t: t.id)
async def test_body_over_limit_with_content_length_is_413(
    client: httpx.AsyncClient, target: BodyTarget
) -> None:
    r, auth, before = await _send_oversized(
        client, target, DEFAULT_MAX_REQUEST_BYTES + 1, streamed=False
    )
    detail = assert_error(r, 413)
    assert str(DEFAULT_MAX_REQUEST_BYTES) in detail
    assert await state_of(client, auth) == before


@pytest.mark.parametrize("target", BODY_TARGETS, ids=lambda t: t.id)
async def test_streamed_body_over_limit_is_413(
    client: httpx.AsyncClient, target: BodyTarget
) -> None:
    r, auth, before = await _send_oversized(
        client, target, DEFAULT_MAX_REQUEST_BYTES + 1, streamed=True
    )
    detail = assert_error(r, 413)
    assert str(DEFAULT_MAX_REQUEST_BYTES) in detail
    assert await state_of(client, auth) == before


@pytest.mark.parametrize(
    ("url", "body", "status"),
    [
        ("/v1/embeddings", b"x" * (DEFAULT_MAX_REQUEST_BYTES + 1), 413),
        # Chat completions may carry images: their own, larger limit.
        ("/v1/chat/completions", b"x" * (32 * 1024 * 1024 + 1), 413),
        ("/v1/chat/completions?x=%00", b"{}", 400),
    ],
    ids=["body-limit", "chat-body-limit", "nul-query"],
)
async def test_refusals_before_routing_speak_openai_under_v1(
    client: httpx.AsyncClient, url: str, body: bytes, status: int
) -> None:
    """The middleware's refusals carry OpenAI's ``error`` object under ``/v1/`` too, as the
    schema declares: it is where OpenAI clients look."""
    r = await client.post(url, content=body, headers=JSON_HEADERS)
    detail = assert_error(r, status)
    assert r.json()["error"]["message"] == detail


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_body_exactly_at_limit_passes_the_size_check(
    client: httpx.AsyncClient, streamed: bool
) -> None:
    """At exactly max_request_bytes the body is read and validated: the title is too long (422),
    it is not refused for its size."""
    target = BodyTarget("POST", "/api/sessions", "title")
    r, auth, before = await _send_oversized(
        client, target, DEFAULT_MAX_REQUEST_BYTES, streamed=streamed
    )
    assert_error(r, 422)
    assert await state_of(client, auth) == before


async def test_small_streamed_body_is_accepted(client: httpx.AsyncClient) -> None:
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth)
    data = b'{"message": "streamed hello", "role": "user", "session": "%s"}' % session_id.encode()
    r = await client.post("/api/chats", content=chunks(data, size=7), headers=JSON_HEADERS | auth)
    assert r.status_code == 201, r.text
    assert [m["content"] for m in await messages_of(client, auth, session_id)] == ["streamed hello"]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_configured_body_limit_is_413(
    small_client: httpx.AsyncClient, streamed: bool
) -> None:
    auth = await login_headers(small_client, "bad")
    session_id = await new_session(small_client, auth)
    before = await state_of(small_client, auth)
    data = oversized_json("message", SMALL_MAX_REQUEST_BYTES + 1, {"role": "user"})
    data = data[:-1] + b', "session": "' + session_id.encode() + b'"}'
    content: bytes | AsyncIterator[bytes] = chunks(data, size=1000) if streamed else data
    r = await small_client.post("/api/chats", content=content, headers=JSON_HEADERS | auth)
    detail = assert_error(r, 413)
    assert str(SMALL_MAX_REQUEST_BYTES) in detail
    assert await state_of(small_client, auth) == before


# -- odd path ids ---------------------------------------------------------------------------------

ODD_IDS: dict[str, str] = {
    "10k-chars": "x" * 10_000,
    "10k-digits": "9" * 10_000,
    "encoded-slash": "a%2Fb",
    "encoded-dotdot": "..%2F..%2Fetc%2Fpasswd",
    "unicode": "ünïcödé-☃-日本語",
    "emoji": "😀" * 40,
    "sql-or": "' OR 1=1 --",
    "sql-or-quoted": "x' OR '1'='1",
    "sql-drop": "1; DROP TABLE users;--",
    "encoded-percent": "%25",
    "encoded-nul": "a%00b",
    "invalid-utf8": "%FF%FE",
    "spaces": "%20%20",
    "backslash": "%5C..%5C",
    "like-wildcard": "%25_%25",
}

ID_ROUTES = [
    ("GET", "/api/sessions/{id}"),
    ("DELETE", "/api/sessions/{id}"),
    ("GET", "/api/chats/{id}"),
    ("DELETE", "/api/chats/session/{id}"),
    ("DELETE", "/api/chats/{id}"),
    ("GET", "/sessions/{id}"),
    ("PUT", "/sessions/{id}"),
    ("DELETE", "/sessions/{id}"),
    ("GET", "/sessions/{id}/messages"),
]


@pytest.mark.parametrize("odd", list(ODD_IDS), ids=list(ODD_IDS))
@pytest.mark.parametrize(("method", "path"), ID_ROUTES, ids=[f"{m} {p}" for m, p in ID_ROUTES])
async def test_odd_path_ids_are_404_or_422(
    client: httpx.AsyncClient, method: str, path: str, odd: str
) -> None:
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth)
    await add_message(client, auth, session_id)
    before = await state_of(client, auth)
    body = {"title": "renamed"} if method == "PUT" else None
    r = await client.request(method, path.format(id=ODD_IDS[odd]), json=body, headers=auth)
    assert_error(r, (404, 422))
    assert await state_of(client, auth) == before


ODD_BODY_SESSION_IDS: dict[str, str] = {
    "10k-chars": "x" * 10_000,
    "slash": "a/b",
    "unicode": "ünïcödé-☃",
    "sql-or": "' OR 1=1 --",
    "nul": "a\x00b",
    "whitespace": "   ",
}


@pytest.mark.parametrize("odd", list(ODD_BODY_SESSION_IDS), ids=list(ODD_BODY_SESSION_IDS))
async def test_odd_session_id_in_message_body_is_404_or_422(
    client: httpx.AsyncClient, odd: str
) -> None:
    auth = await login_headers(client, "bad")
    await new_session(client, auth)
    before = await state_of(client, auth)
    r = await client.post(
        "/api/chats",
        json={"message": "hi", "role": "user", "session": ODD_BODY_SESSION_IDS[odd]},
        headers=auth,
    )
    assert_error(r, (404, 422))
    assert await state_of(client, auth) == before


# -- NUL characters in stored text ----------------------------------------------------------------


async def test_nul_in_title_is_stored_intact_or_refused(client: httpx.AsyncClient) -> None:
    """PostgreSQL text cannot hold U+0000; either way the answer is not a 500."""
    auth = await login_headers(client, "bad")
    r = await client.post("/api/sessions", json={"title": "a\x00b"}, headers=auth)
    assert r.status_code in (201, 422), r.text
    sessions = await sessions_of(client, auth)
    if r.status_code == 201:
        assert [s["title"] for s in sessions] == ["a\x00b"]
    else:
        assert_error(r, 422)
        assert sessions == []


async def test_nul_in_message_is_stored_intact_or_refused(client: httpx.AsyncClient) -> None:
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth)
    r = await client.post(
        "/api/chats",
        json={"message": "a\x00b", "role": "user", "session": session_id},
        headers=auth,
    )
    assert r.status_code in (201, 422), r.text
    contents = [m["content"] for m in await messages_of(client, auth, session_id)]
    if r.status_code == 201:
        assert contents == ["a\x00b"]
    else:
        assert_error(r, 422)
        assert contents == []


@pytest.mark.parametrize("path", ["/auth/register", "/users/", "/api/auth/register"])
async def test_nul_in_profile_name_is_stored_intact_or_refused(
    client: httpx.AsyncClient, path: str
) -> None:
    email = unique_email("nul")
    r = await client.post(
        path,
        json={"email": email, "password": PASSWORD, "username": "n\x00l", "first_name": "n\x00l"},
    )
    assert r.status_code in (200, 201, 422), r.text
    login = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    if r.status_code == 422:
        assert_error(r, 422)
        assert login.status_code == 401
    else:
        assert login.status_code == 200


async def test_nul_in_profile_update_is_stored_intact_or_refused(
    client: httpx.AsyncClient,
) -> None:
    auth = await login_headers(client, "bad")
    before = await state_of(client, auth)
    r = await client.put("/users/me/", json={"first_name": "n\x00l"}, headers=auth)
    assert r.status_code in (200, 422), r.text
    after = await state_of(client, auth)
    if r.status_code == 200:
        assert after["me"]["first_name"] == "n\x00l"
    else:
        assert_error(r, 422)
        assert after == before


async def test_nul_in_token_form_username_is_401_or_422(client: httpx.AsyncClient) -> None:
    r = await client.post("/token", data={"username": "a\x00@example.com", "password": PASSWORD})
    assert_error(r, (401, 422))


# -- registration ---------------------------------------------------------------------------------

REGISTER_PATHS = ["/api/auth/register", "/users/", "/auth/register"]
REGISTER_OK = {"/api/auth/register": 201, "/users/": 200, "/auth/register": 200}

BAD_EMAILS: dict[str, str] = {
    "no-at": "not-an-email",
    "no-domain": "someone@",
    "no-local-part": "@example.com",
    "space-inside": "some one@example.com",
    "double-at": "a@@example.com",
    "empty": "",
    "too-long": "a" * 320 + "@example.com",
}


@pytest.mark.parametrize("email", list(BAD_EMAILS), ids=list(BAD_EMAILS))
@pytest.mark.parametrize("path", REGISTER_PATHS)
async def test_register_with_bad_email_is_422(
    client: httpx.AsyncClient, path: str, email: str
) -> None:
    r = await client.post(path, json={"email": BAD_EMAILS[email], "password": PASSWORD})
    assert_error(r, 422)


BAD_PASSWORDS: dict[str, str] = {
    "7-chars": "Zq7!xkp",
    "129-chars": "Zq7!xkp" * 18 + "abc",
    "common": "password123",
    "common-any-case": "PassWord123",
    "common-qwerty": "qwertyuiop",
}


@pytest.mark.parametrize("password", list(BAD_PASSWORDS), ids=list(BAD_PASSWORDS))
@pytest.mark.parametrize("path", REGISTER_PATHS)
async def test_register_with_bad_password_is_422_and_creates_no_user(
    client: httpx.AsyncClient, path: str, password: str
) -> None:
    assert len(BAD_PASSWORDS["129-chars"]) == 129
    email = unique_email("weak")
    r = await client.post(path, json={"email": email, "password": BAD_PASSWORDS[password]})
    assert_error(r, 422)
    r = await client.post("/auth/login", json={"email": email, "password": BAD_PASSWORDS[password]})
    assert r.status_code == 401
    # The email is still free: no user was created by the refused attempt.
    r = await client.post(path, json={"email": email, "password": PASSWORD})
    assert r.status_code == REGISTER_OK[path], r.text


@pytest.mark.parametrize("password", ["", "x" * 4097], ids=["empty", "4097-chars"])
@pytest.mark.parametrize("path", REGISTER_PATHS)
async def test_register_with_out_of_bounds_password_is_422(
    client: httpx.AsyncClient, path: str, password: str
) -> None:
    email = unique_email("bounds")
    r = await client.post(path, json={"email": email, "password": password})
    assert_error(r, 422)
    r = await client.post(path, json={"email": email, "password": PASSWORD})
    assert r.status_code == REGISTER_OK[path], r.text


@pytest.mark.parametrize("body", [{}, {"password": PASSWORD}, {"email": "x@example.com"}])
@pytest.mark.parametrize("path", REGISTER_PATHS)
async def test_register_with_missing_fields_is_422(
    client: httpx.AsyncClient, path: str, body: dict[str, str]
) -> None:
    assert_error(await client.post(path, json=body), 422)


@pytest.mark.parametrize("second", REGISTER_PATHS)
@pytest.mark.parametrize("first", REGISTER_PATHS)
async def test_duplicate_email_is_400_case_insensitively(
    client: httpx.AsyncClient, first: str, second: str
) -> None:
    local = f"Dup-{uuid.uuid4().hex[:10]}"
    r = await client.post(
        first, json={"email": f"{local}@Example.com", "password": PASSWORD, "username": "first"}
    )
    assert r.status_code == REGISTER_OK[first], r.text
    other_password = "another unguessable passphrase"
    for email in (f"{local.lower()}@example.com", f"{local.upper()}@EXAMPLE.COM"):
        r = await client.post(second, json={"email": email, "password": other_password})
        assert_error(r, 400)
        assert r.json()["detail"] == "Email already registered"
    # The original account is untouched: its password still works, the duplicate's does not.
    email = f"{local.lower()}@example.com"
    r = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200
    r = await client.post("/auth/login", json={"email": email, "password": other_password})
    assert r.status_code == 401


# -- query parameters -----------------------------------------------------------------------------

PAGED_PATHS = [
    "/api/sessions",
    "/sessions",
    "/sessions/",
    "/api/chats/{session}",
    "/sessions/{session}/messages",
]
BAD_QUERIES = [
    "limit=0",
    "limit=-1",
    "offset=-5",
    "limit=abc",
    "offset=abc",
    "limit=1.5",
    "offset=10000001",
    "limit=1e3",
]


@pytest.mark.parametrize("query", BAD_QUERIES)
@pytest.mark.parametrize("path", PAGED_PATHS)
async def test_bad_paging_query_is_422(client: httpx.AsyncClient, path: str, query: str) -> None:
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth)
    r = await client.get(f"{path.format(session=session_id)}?{query}", headers=auth)
    assert_error(r, 422)


@pytest.mark.parametrize("path", PAGED_PATHS)
async def test_good_paging_query_is_200(client: httpx.AsyncClient, path: str) -> None:
    """The controls for the test above: valid limits, including one over the cap, succeed."""
    auth = await login_headers(client, "bad")
    session_id = await new_session(client, auth)
    await add_message(client, auth, session_id)
    url = path.format(session=session_id)
    for query in ("limit=1&offset=0", "limit=1000000000000", "offset=10000000"):
        r = await client.get(f"{url}?{query}", headers=auth)
        assert r.status_code == 200, f"{query}: {r.text}"
    r = await client.get(f"{url}?limit=1", headers=auth)
    assert len(r.json()) == 1


# -- unknown routes and wrong methods -------------------------------------------------------------

UNKNOWN_PATHS = [
    "/does-not-exist",
    "/api",
    "/api/sessionz",
    "/api/chats/session/abc/extra",
    "/sessions/abc/messages/extra",
    "/auth",
    "/userz/",
    "/users/me/extra",
]


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
async def test_unknown_route_is_404(client: httpx.AsyncClient, alice: TestUser, path: str) -> None:
    for headers in ({}, alice.headers):
        r = await client.get(path, headers=headers)
        assert_error(r, 404)
        assert r.json() == {"detail": "Not Found"}


WRONG_METHODS = [
    ("PATCH", "/api/sessions"),
    ("GET", "/api/chats"),
    ("PUT", "/api/chats"),
    ("DELETE", "/auth/login"),
    ("GET", "/auth/register"),
    ("GET", "/token"),
    ("PATCH", "/users/me/"),
    ("POST", "/users/me/"),
    ("POST", "/sessions/{id}"),
    ("PATCH", "/sessions/{id}"),
    ("POST", "/sessions/{id}/messages"),
    ("PUT", "/api/sessions/{id}"),
    ("POST", "/healthz"),
]


@pytest.mark.parametrize(
    ("method", "path"), WRONG_METHODS, ids=[f"{m} {p}" for m, p in WRONG_METHODS]
)
async def test_wrong_method_is_405(
    client: httpx.AsyncClient, make_user: UserFactory, method: str, path: str
) -> None:
    user = await make_user("method")
    before = await state_of(client, user.headers)
    r = await client.request(
        method, path.format(id=uuid.uuid4()), json={"title": "x"}, headers=user.headers
    )
    assert_error(r, 405)
    assert r.json() == {"detail": "Method Not Allowed"}
    assert method not in r.headers["allow"]
    assert await state_of(client, user.headers) == before
