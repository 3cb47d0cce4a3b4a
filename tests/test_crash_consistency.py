"""A real ``omnichat serve`` (SQLite) killed with SIGKILL while many clients write, and stopped
with SIGTERM while replies stream: what the database holds afterwards.

Kill -9: every write the server acknowledged (2xx) before the kill is there after the restart, the
file passes ``PRAGMA integrity_check``, no message outlives its session, no chunk or vector
outlives its document. SIGTERM: the process exits within its grace period (plus a margin) and
every reply that was streaming is stored with a terminal status and the text it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnichat.generation.service import INTERRUPTED
from tests.conftest import login_headers
from tests.docs_factory import make_pdf
from tests.fakes import FakeProviderServer, Reply
from tests.test_cli import _env, _free_port

WRITERS = 8
STREAMS = 3
TERMINAL = {"complete", "stopped", "error"}


@pytest.fixture(scope="module")
def slow_provider() -> Iterator[FakeProviderServer]:
    """Every reply is 60 tokens, 50 ms apart (3 s): still running when the server goes down."""
    with FakeProviderServer(tokens=60, interval_s=0.05, record=False) as server:
        yield server


class Server:
    """``omnichat serve`` on a free port over one data dir; restartable, always cleaned up."""

    def __init__(
        self,
        tmp_path: Path,
        provider: FakeProviderServer,
        database_url: str | None = None,
        **extra: str,
    ) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.db_path = tmp_path / "crash.db"
        self.log_path = tmp_path / "server.log"
        values = {
            "OMNICHAT_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{self.db_path}",
            "OMNICHAT_OPENAI_API_KEY": "sk-fake-openai-key-0123456789",
            "OMNICHAT_OPENAI_BASE_URL": provider.base_url_for("openai"),
            "OMNICHAT_GENERATION_RATE_LIMIT": "100000/minute",
            "OMNICHAT_MAX_CONCURRENT_GENERATIONS": "100",
            "OMNICHAT_ACCESS_LOG": "false",
        }
        values.update(extra)
        self.env = _env(tmp_path / "data", **values)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "omnichat", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError(f"server did not start:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def terminate(self, timeout_s: float) -> float:
        """SIGTERM; the seconds until it exited (killed, and an assertion, past ``timeout_s``)."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running {timeout_s} s after SIGTERM") from None
        # uvicorn re-raises the captured SIGTERM once it has shut down cleanly.
        assert code in (0, -signal.SIGTERM), self.log_path.read_text()[-3000:]
        return time.monotonic() - began


@pytest.fixture
def server_factory(tmp_path: Path, slow_provider: FakeProviderServer) -> Iterator[Any]:
    made: list[Server] = []

    def make(**extra: str) -> Server:
        server = Server(tmp_path, slow_provider, **extra)
        made.append(server)
        return server

    yield make
    for server in made:
        server.kill()


async def _new_session(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    r = await client.post("/api/sessions", json={"title": "crash"}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _writer(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    session_id: str,
    name: str,
    acknowledged: dict[str, tuple[str, str]],
) -> None:
    """Adds messages until the server goes away; records each one it answered 2xx to."""
    for n in range(100_000):
        content = f"{name}-{n}"
        try:
            r = await client.post(
                "/api/chats",
                json={"message": content, "role": "user", "session": session_id},
                headers=headers,
            )
        except httpx.TransportError:
            return
        if r.is_success:
            acknowledged[r.json()["id"]] = (session_id, content)


async def _streamer(
    client: httpx.AsyncClient, headers: dict[str, str], session_id: str, started: list[str]
) -> None:
    """Starts replies one after another until the server goes away."""
    with contextlib.suppress(httpx.TransportError, httpx.StreamError):
        while True:
            async with client.stream(
                "POST",
                "/chat/stream",
                json={"session_id": session_id, "prompt": "go"},
                headers=headers,
            ) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {") and '"message_id"' in line:
                        started.append(line)


def _sqlite(path: Path) -> Any:
    """The file opened the way the app opens it (sqlean, with sqlite-vec loaded)."""
    import sqlean
    import sqlite_vec

    connection = sqlean.connect(str(path))
    connection.enable_load_extension(True)
    sqlite_vec.load(connection)
    connection.enable_load_extension(False)
    return connection


def _scalar(connection: Any, sql: str) -> Any:
    return connection.execute(sql).fetchone()[0]


async def test_kill_9_under_concurrent_writes_loses_nothing_acknowledged(
    server_factory: Any,
) -> None:
    # Replies the kill left ``streaming`` are stored as interrupted within 3 heartbeats.
    server = server_factory(OMNICHAT_REPLY_HEARTBEAT_S="0.5")
    server.start()
    acknowledged: dict[str, tuple[str, str]] = {}
    started: list[str] = []
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=server.base, timeout=30, limits=limits) as client:
        headers = await login_headers(client, "crash")
        sessions = [await _new_session(client, headers) for _ in range(WRITERS + STREAMS)]
        # A document being indexed at the kill as well (background ingest).
        pages = [f"Page {n}. " + "The harbour log lists every ship. " * 40 for n in range(12)]
        r = await client.post(
            "/upload/document",
            params={"background": "true"},
            files={"file": ("log.pdf", make_pdf(pages), "application/pdf")},
            headers=headers,
        )
        assert r.status_code == 202, r.text
        document_id = r.json()["id"]
        tasks = [
            asyncio.create_task(_writer(client, headers, sessions[i], f"w{i}", acknowledged))
            for i in range(WRITERS)
        ] + [
            asyncio.create_task(_streamer(client, headers, sessions[WRITERS + i], started))
            for i in range(STREAMS)
        ]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(acknowledged) >= 150 and len(started) >= STREAMS:
                break
            await asyncio.sleep(0.05)
        assert len(acknowledged) >= 150, len(acknowledged)
        assert len(started) >= STREAMS, started
        server.kill()  # SIGKILL, mid-write: requests in flight get no answer
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)

    server.start()  # same data dir and database file
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        stored: dict[str, tuple[str, str]] = {}
        for session_id in sessions[:WRITERS]:
            r = await client.get(f"/api/chats/{session_id}", headers=headers)
            assert r.status_code == 200, r.text
            for message in r.json():
                stored[message["id"]] = (session_id, message["content"])
        missing = {k: v for k, v in acknowledged.items() if stored.get(k) != v}
        assert missing == {}, f"{len(missing)} acknowledged writes lost of {len(acknowledged)}"
        # The interrupted document resumes (or fails) instead of staying "processing".
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = (await client.get(f"/documents/{document_id}", headers=headers)).json()
            if state["status"] != "processing":
                break
            await asyncio.sleep(0.2)
        assert state["status"] == "ready", state
    server.terminate(timeout_s=60)

    connection = _sqlite(server.db_path)
    try:
        assert _scalar(connection, "PRAGMA integrity_check") == "ok"
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        orphan_messages = _scalar(
            connection,
            "SELECT count(*) FROM messages m"
            " LEFT JOIN chat_sessions s ON s.id = m.session_id WHERE s.id IS NULL",
        )
        assert orphan_messages == 0
        orphan_chunks = _scalar(
            connection,
            "SELECT count(*) FROM chunks c"
            " LEFT JOIN documents d ON d.id = c.document_id WHERE d.id IS NULL",
        )
        assert orphan_chunks == 0
        orphan_vectors = _scalar(
            connection,
            "SELECT count(*) FROM chunk_vectors WHERE chunk_id NOT IN (SELECT id FROM chunks)",
        )
        assert orphan_vectors == 0
        orphan_keywords = _scalar(
            connection, "SELECT count(*) FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks)"
        )
        assert orphan_keywords == 0
        # Every chunk of the ready document has its vector.
        unindexed = _scalar(
            connection,
            "SELECT count(*) FROM chunks WHERE id NOT IN (SELECT chunk_id FROM chunk_vectors)",
        )
        assert unindexed == 0
        # Replies interrupted by the kill: an assistant row for each prompt, never a dangling one.
        prompts_without_reply = _scalar(
            connection,
            "SELECT count(*) FROM messages u WHERE u.role = 'user' AND u.content = 'go'"
            " AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.session_id = u.session_id"
            " AND a.role = 'assistant')",
        )
        assert prompts_without_reply == 0
        # ...and none stays "streaming": the restarted server marks them, no second restart.
        deadline = time.monotonic() + 30
        while _scalar(connection, "SELECT count(*) FROM messages WHERE status = 'streaming'"):
            assert time.monotonic() < deadline, "replies left streaming after the restart"
            await asyncio.sleep(0.2)
        interrupted = connection.execute(
            "SELECT count(*) FROM messages WHERE role = 'assistant' AND status = 'error'"
            " AND error = ?",
            (INTERRUPTED,),
        ).fetchone()[0]
        assert interrupted >= 1  # the kill cut at least one of the running replies
    finally:
        connection.close()


class OpenStream:
    """A ``/chat/stream`` reply read in the background until its stream ends."""

    def __init__(self) -> None:
        self.message_id = ""
        self.deltas: list[str] = []
        self.closing: dict[str, Any] | None = None  # the last JSON event, ``done: true``
        self.done_marker = False  # ``data: [DONE]`` came after it
        self.task: asyncio.Task[None] | None = None


async def _open_stream(
    client: httpx.AsyncClient, headers: dict[str, str], session_id: str
) -> OpenStream:
    """Starts a reply, reads two deltas, then keeps reading in the background until it ends."""
    opened = OpenStream()
    ready = asyncio.Event()

    async def read() -> None:
        import json

        with contextlib.suppress(httpx.TransportError, httpx.StreamError):
            async with client.stream(
                "POST",
                "/chat/stream",
                json={"session_id": session_id, "prompt": "tell me"},
                headers=headers,
            ) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line == "data: [DONE]":
                        opened.done_marker = opened.closing is not None
                    if not line.startswith("data: {"):
                        continue
                    event = json.loads(line[len("data: ") :])
                    if "message_id" in event:
                        opened.message_id = opened.message_id or event["message_id"]
                    if event.get("done"):
                        opened.closing = event
                    if event.get("delta"):
                        opened.deltas.append(event["delta"])
                        if len(opened.deltas) >= 2:
                            ready.set()
        ready.set()

    opened.task = asyncio.create_task(read())
    await asyncio.wait_for(ready.wait(), timeout=30)
    assert opened.message_id
    assert len(opened.deltas) >= 2
    return opened


async def _open_v1_stream(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    """A ``/v1`` stream (nothing stored) read until it ends: its ``data:`` lines."""
    lines: list[str] = []
    with contextlib.suppress(httpx.TransportError, httpx.StreamError):
        async with client.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "openai:gpt-5.4-mini",
                "messages": [{"role": "user", "content": "tell me"}],
                "stream": True,
            },
            headers=headers,
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    lines.append(line)
    return lines


LONG = [f" t{i}" for i in range(400)]  # 20 s at 50 ms a token


@pytest.mark.parametrize(("grace_s", "tokens"), [(2.0, LONG), (8.0, None)])
async def test_sigterm_with_open_streams_stores_every_reply(
    server_factory: Any, slow_provider: FakeProviderServer, grace_s: float, tokens: Any
) -> None:
    """20 s replies and a grace of 2 s: the replies are stopped before the grace is spent and
    stored with their partial text. 3 s replies and a grace of 8 s: they finish and are stored
    complete. Either way no row is left ``streaming``, every open stream (stored replies and a
    ``/v1`` one) gets its closing event and ``[DONE]``, and the process is gone within the
    grace plus a margin for closing the pools."""
    server = server_factory(OMNICHAT_SHUTDOWN_GRACE_S=str(grace_s))
    server.start()
    if tokens is not None:
        slow_provider.script(*[Reply(tokens=tokens, interval_s=0.05) for _ in range(STREAMS + 1)])
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            headers = await login_headers(client, "crash")
            sessions = [await _new_session(client, headers) for _ in range(STREAMS)]
            opened = [await _open_stream(client, headers, s) for s in sessions]
            v1_stream = asyncio.create_task(_open_v1_stream(client, headers))
            await asyncio.sleep(0.5)  # its first chunks are out
            elapsed = await asyncio.to_thread(server.terminate, 2 * grace_s + 30)
            await asyncio.wait_for(
                asyncio.gather(*(stream.task for stream in opened if stream.task)), timeout=30
            )
            v1_lines = await asyncio.wait_for(v1_stream, timeout=30)
    finally:
        slow_provider.reset()
    assert elapsed < grace_s + 5, elapsed

    connection = _sqlite(server.db_path)
    try:
        rows = {
            row[0]: row[1:]
            for row in connection.execute(
                "SELECT id, status, content FROM messages WHERE role = 'assistant'"
            )
        }
    finally:
        connection.close()
    assert _no_streaming(rows)
    for stream in opened:
        status, content = rows[stream.message_id]
        assert status in TERMINAL, status
        assert content.startswith("".join(stream.deltas[:2])), (content, stream.deltas)
        # The client saw the ending that was stored, then the end marker.
        assert stream.closing is not None, stream.deltas
        assert stream.closing["status"] == status
        assert stream.done_marker
        if tokens is None:
            assert status == "complete"
            assert len(content) >= len(" ".join(["x"] * 60))  # all 60 tokens
        else:
            assert status in ("stopped", "error")
            assert 0 < len(content) < len("".join(LONG))
    assert v1_lines[-1] == "data: [DONE]", v1_lines[-3:]
    if tokens is not None:  # cut: OpenAI's in-stream error says why
        assert '"error"' in v1_lines[-2], v1_lines[-3:]
        assert "shutting down" in v1_lines[-2]


def _no_streaming(rows: dict[str, tuple[str, str]]) -> bool:
    left = [k for k, (status, _) in rows.items() if status == "streaming"]
    assert left == [], left
    return True
