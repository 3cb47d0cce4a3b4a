"""Requests still unanswered when a SIGTERM's grace ends (``omnichat serve``, SQLite): each gets
an answer that says what became of it, never uvicorn's bare 500 text."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx

from tests.conftest import login_headers
from tests.test_crash_consistency import _sqlite, server_factory, slow_provider

__all__ = ["server_factory", "slow_provider"]  # fixtures


async def test_sigterm_with_a_request_body_still_arriving_answers_503(
    server_factory: Any,
) -> None:
    """A request whose body has not all arrived when the grace ends is cancelled by uvicorn; the
    client gets a 503 JSON answer saying the server is stopping (uvicorn's own answer was a bare
    ``500 Internal Server Error`` text, with two tracebacks in the log), and nothing is stored."""
    server = server_factory(OMNICHAT_SHUTDOWN_GRACE_S="1")
    server.start()
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        headers = await login_headers(client, "sigterm-body")
        before = (await client.get("/api/sessions", headers=headers)).json()
    body = b'{"title": "' + b"t" * 200 + b'"}'
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: {headers['Authorization']}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:20]
        )
        await asyncio.sleep(0.5)  # the route is waiting for the rest of the body
        await asyncio.to_thread(server.terminate, 30)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), response[:300]
    assert b"retry-after:" in head.lower(), head
    assert "shutting down" in json.loads(payload)["detail"]
    log = server.log_path.read_text()
    assert "Exception in ASGI application" not in log, log[-3000:]
    connection = _sqlite(server.db_path)
    try:
        titles = [row[0] for row in connection.execute("SELECT title FROM chat_sessions")]
    finally:
        connection.close()
    assert len(titles) == len(before)


async def test_sigterm_while_an_upload_indexes_answers_202_and_the_indexing_resumes(
    server_factory: Any,
) -> None:
    """An upload still indexing when the grace ends is stored and resumes at the next start: it
    answers 202 with the document ``processing`` (a 503 would have the client send it again,
    and a second copy would be made), and after a restart there is that one document."""
    server = server_factory(OMNICHAT_SHUTDOWN_GRACE_S="1")
    server.start()
    text = "".join(
        f"Line {n} of the ledger names ship {n % 97} and cargo {n}.\n" for n in range(8000)
    )
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
        headers = await login_headers(client, "sigterm-upload")
        upload = asyncio.create_task(
            client.post(
                "/upload/document",
                files={"file": ("ledger.txt", text.encode(), "text/plain")},
                headers=headers,
            )
        )
        for _ in range(600):  # until it is stored and indexing
            listed = (await client.get("/documents", headers=headers)).json()
            if listed and listed[0]["status"] == "processing":
                break
            await asyncio.sleep(0.05)
        assert listed, "the upload was never stored"
        assert listed[0]["status"] == "processing", listed
        await asyncio.to_thread(server.terminate, 30)
        r = await upload
    assert r.status_code == 202, r.text
    assert r.json()["id"] == listed[0]["id"]
    assert r.json()["status"] == "processing"
    assert "Exception in ASGI application" not in server.log_path.read_text()

    server.start()  # the same data dir, and its secret key: the token still works
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
        listed = (await client.get("/documents", headers=headers)).json()
    assert [document["id"] for document in listed] == [r.json()["id"]]
    assert listed[0]["status"] in ("processing", "ready")
