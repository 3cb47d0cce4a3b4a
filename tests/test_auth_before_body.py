"""A route that needs credentials refuses a request without valid ones before it reads the body:
an anonymous client that promises a large upload and sends a few bytes gets its 401 at once, from
a real server over a real socket, with the rest of the body never sent."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from omnichat.app import create_app
from omnichat.settings import Settings
from tests.conftest import ThreadedServer, register_user
from tests.route_table import Endpoint, app_endpoints
from tests.test_authorization_matrix import is_public

# Routes with a body that need no credential: registration, login, refresh, and logout (whose
# body may carry the refresh token that is its credential).
ANONYMOUS_BODY_ROUTES = {"POST /auth/logout"}
GUARDED = [
    e for e in app_endpoints() if e.body and not is_public(e) and e.id not in ANONYMOUS_BODY_ROUTES
]
UPLOAD = "POST /upload/document"
PROMISED_UPLOAD_BYTES = 20 * 1024 * 1024  # under the upload limit: no 413 to answer first
PROMISED_BODY_BYTES = 1024 * 1024  # under every other route's limit
ANSWER_WITHIN_S = 5.0
BOUNDARY = "omnichat-test-boundary"
CONTENT_TYPES = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "multipart": f"multipart/form-data; boundary={BOUNDARY}",
}
# The first bytes of each body: well-formed so far, so a parser that reads on waits for more.
FIRST_BYTES = {
    "json": b'{"title": "',
    "form": b"username=",
    "multipart": (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n0123456789"
    ).encode(),
}


@pytest.fixture(scope="module")
def server(app: FastAPI, settings: Settings) -> Iterator[ThreadedServer]:
    """A real server on the tests' (migrated) database."""
    with ThreadedServer(create_app(settings)) as running:
        yield running


@pytest.fixture
async def server_client(server: ThreadedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
        yield c


def _status_of_partial_request(
    server: ThreadedServer, endpoint: Endpoint, authorization: str | None
) -> tuple[int, float]:
    """Sends the headers of a large body and a few bytes of it; the status and how long the
    answer took. Fails if no answer comes while the rest of the body is still owed."""
    assert endpoint.body is not None
    path = re.sub(r"\{[^}]+\}", "0123456789abcdef", endpoint.path)
    promised = PROMISED_UPLOAD_BYTES if endpoint.id == UPLOAD else PROMISED_BODY_BYTES
    lines = [
        f"{endpoint.method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        f"Content-Type: {CONTENT_TYPES[endpoint.body]}",
        f"Content-Length: {promised}",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN_S) as sock:
        started = time.monotonic()
        sock.sendall(head + FIRST_BYTES[endpoint.body])
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            pytest.fail(f"{endpoint.id}: no answer in {ANSWER_WITHIN_S} s: it waits for the body")
        elapsed = time.monotonic() - started
    status_line = answer.split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1]), elapsed


def test_some_upload_route_is_guarded() -> None:
    assert UPLOAD in {e.id for e in GUARDED}
    assert len(GUARDED) > 10


@pytest.mark.parametrize("endpoint", GUARDED, ids=lambda e: e.id)
async def test_anonymous_body_is_refused_before_it_is_read(
    server: ThreadedServer, endpoint: Endpoint
) -> None:
    status, elapsed = await asyncio.to_thread(_status_of_partial_request, server, endpoint, None)
    assert status == 401
    assert elapsed < ANSWER_WITHIN_S


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-token", "Bearer sk-omni-0123456789abcdef0123456789abcdef", "Basic dXNlcjpwdw=="],
    ids=["bad-jwt", "unknown-api-key", "not-bearer"],
)
async def test_bad_credential_upload_is_refused_before_it_is_read(
    server: ThreadedServer, authorization: str
) -> None:
    endpoint = next(e for e in GUARDED if e.id == UPLOAD)
    status, elapsed = await asyncio.to_thread(
        _status_of_partial_request, server, endpoint, authorization
    )
    assert status == 401
    assert elapsed < ANSWER_WITHIN_S


async def test_a_users_slow_upload_still_works(server_client: httpx.AsyncClient) -> None:
    user = await register_user(server_client, "slowup")
    text = b"The harbour soup needs fennel, saffron and a patient cook.\n"
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="soup.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n".encode(),
        text,
        f"\r\n--{BOUNDARY}--\r\n".encode(),
    ]

    async def slowly() -> AsyncIterator[bytes]:
        for part in parts:
            await asyncio.sleep(0.2)
            yield part

    r = await server_client.post(
        "/upload/document",
        content=slowly(),
        headers={"Content-Type": CONTENT_TYPES["multipart"], **user.headers},
    )
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == "soup.txt"
    r = await server_client.post(
        "/api/sessions", json={"title": "still parsed after auth"}, headers=user.headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["title"] == "still parsed after auth"
