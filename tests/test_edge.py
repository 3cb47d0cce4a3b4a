"""The server's edge, run as ``omnichat serve`` runs it and probed with raw sockets: request heads
are capped and timed out, idle connections are closed, connections per client address are
capped; and the followers of running replies are capped per user."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from omnichat.app import create_app
from omnichat.settings import Settings
from tests.conftest import ThreadedServer, register_user
from tests.fakes import FakeProviderServer, Reply
from tests.sse import open_chat_stream
from tests.test_cli import OMNICHAT, _env, _free_port

MAX_HEADER_BYTES = 16 * 1024
HEADER_TIMEOUT_S = 2.0
BODY_IDLE_TIMEOUT_S = 2.0
KEEP_ALIVE_TIMEOUT_S = 1.0
CONNECTIONS_PER_ADDRESS = 4
# Loopback answers on all of 127/8: each of these is another client address. 127.0.0.1 is a
# trusted proxy (uvicorn's forwarded_allow_ips), whose connections are not capped.
GREEDY_CLIENT = "127.0.0.2"
OTHER_CLIENT = "127.0.0.3"
HEALTH_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n"


@dataclass
class Served:
    port: int
    process: subprocess.Popen[bytes]

    def connect(self, source: str = OTHER_CLIENT, timeout_s: float = 10.0) -> socket.socket:
        sock = socket.socket()
        sock.settimeout(timeout_s)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", self.port))
        return sock

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def settled_rss_kib(self) -> int:
        """The resident size once start-up work in the background (the embedder's model
        loading, ~130 MB) is over: steady for a second."""
        deadline = time.monotonic() + 60
        last = self.rss_kib()
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = self.rss_kib()
            if abs(now - last) < 1024:
                return now
            last = now
        return last


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``omnichat serve`` with small edge limits, on SQLite."""
    data_dir = tmp_path_factory.mktemp("edge")
    port = _free_port()
    env = _env(
        data_dir,
        OMNICHAT_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
        OMNICHAT_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        OMNICHAT_BODY_IDLE_TIMEOUT_S=str(BODY_IDLE_TIMEOUT_S),
        OMNICHAT_KEEP_ALIVE_TIMEOUT_S=str(KEEP_ALIVE_TIMEOUT_S),
        OMNICHAT_MAX_CONNECTIONS_PER_ADDRESS=str(CONNECTIONS_PER_ADDRESS),
        OMNICHAT_ACCESS_LOG="false",
    )
    process = subprocess.Popen(
        [*OMNICHAT, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("omnichat serve did not start")
    yield Served(port, process)
    process.terminate()
    process.wait(timeout=30)


def _response(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection or goes quiet for the socket's
    timeout (b"" when it closed, or reset, without a word)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received and b"connection: close" not in received.lower():
                break  # a kept-alive response: no close to wait for
    except ConnectionResetError:
        pass
    return received


def _closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it was still open after
    ``seconds``."""
    deadline = time.monotonic() + seconds
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return None


def _send_head(served: Served, head: bytes) -> bytes:
    with served.connect() as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)  # the server may close while we are still sending: refused
        return _response(sock)


def test_a_head_under_the_cap_is_served(edge: Served) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Fill: " + b"a" * 8000 + b"\r\n\r\n"
    assert _send_head(edge, head).startswith(b"HTTP/1.1 200")


def test_a_one_megabyte_header_gets_431(edge: Served) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Big: " + b"a" * 1024 * 1024 + b"\r\n\r\n"
    response = _send_head(edge, head)
    # 431, or (if the client was still sending when the server closed) a reset.
    assert response == b"" or response.startswith(b"HTTP/1.1 431"), response[:200]
    # A head just over the cap, sent at once (one read), is refused all the same.
    just_over = b"GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Big: " + b"a" * MAX_HEADER_BYTES
    response = _send_head(edge, just_over + b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 431"), response[:200]
    assert b'{"detail":' in response
    assert _send_head(edge, HEALTH_REQUEST).startswith(b"HTTP/1.1 200")


def test_unterminated_heads_do_not_grow_the_server(edge: Served) -> None:
    """Eight connections each sending 4 MB of a head that never ends: the server keeps at most
    the cap (and one read) of each, not the megabytes."""
    _send_head(edge, HEALTH_REQUEST)  # warmed up
    before = edge.settled_rss_kib()
    holders = [edge.connect(source=f"127.0.1.{i}") for i in range(8)]
    try:
        for sock in holders:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Big: ")
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                sock.sendall(b"a" * 4 * 1024 * 1024)
        time.sleep(0.5)
        grown_kib = edge.rss_kib() - before
    finally:
        for sock in holders:
            sock.close()
    assert grown_kib < 8 * 1024, f"the server grew by {grown_kib} KiB"


def test_an_endless_chunked_trailer_is_cut_off(edge: Served) -> None:
    """Chunk lines and trailers come after the head, inside the body: an endless trailer (or
    chunk extension) is capped like a head, the connection dropped, the server not grown; a
    chunked body with ordinary framing is served."""
    ordinary = (
        b"POST /auth/login HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2;name=value\r\n{}\r\n0\r\nX-Trailer: fine\r\n\r\n"
    )
    assert _send_head(edge, ordinary).startswith(b"HTTP/1.1 422")
    before = edge.settled_rss_kib()
    for attack in (b"0\r\nX-T: ", b"2;x="):
        sock = edge.connect(source="127.0.2.1")
        try:
            sock.sendall(
                b"POST /auth/login HTTP/1.1\r\nHost: edge\r\nTransfer-Encoding: chunked\r\n\r\n"
                + (b"2\r\n{}\r\n" if attack.startswith(b"0") else b"")
                + attack
            )
            sent = 0
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                while sent < 8 * 1024 * 1024:
                    sock.sendall(b"a" * 64 * 1024)
                    sent += 64 * 1024
            assert sent < 8 * 1024 * 1024, "8 MB of trailer were taken in"
        finally:
            sock.close()
    grown_kib = edge.rss_kib() - before
    assert grown_kib < 8 * 1024, f"the server grew by {grown_kib} KiB"
    assert _send_head(edge, HEALTH_REQUEST).startswith(b"HTTP/1.1 200")


def test_a_body_that_stops_arriving_is_dropped_and_a_slow_one_is_not(edge: Served) -> None:
    """A body promised and not sent holds its connection for the idle timeout, not for ever;
    a body that keeps coming, however slowly, is read to its end."""
    head = (
        b"POST /auth/login HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50\r\n\r\n"
    )
    sock = edge.connect(source="127.0.3.1", timeout_s=BODY_IDLE_TIMEOUT_S * 5)
    try:
        sock.sendall(head + b'{"em')
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(65536) == b""  # closed, no answer: the request never completed
        assert time.monotonic() - started < BODY_IDLE_TIMEOUT_S * 4
    finally:
        sock.close()
    body = b'{"email": "slow@example.com", "password": "not-the-password"}'
    sock = edge.connect(source="127.0.3.2", timeout_s=30)
    try:
        sock.sendall(head.replace(b"50", str(len(body)).encode()))
        for start in range(0, len(body), len(body) // 4 + 1):  # over ~1.5 idle timeouts
            time.sleep(BODY_IDLE_TIMEOUT_S * 0.4)
            sock.sendall(body[start : start + len(body) // 4 + 1])
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    finally:
        sock.close()


def test_a_silent_connection_is_closed_after_the_header_timeout(edge: Served) -> None:
    with edge.connect() as sock:
        sent = _closed_within(sock, HEADER_TIMEOUT_S + 3)
    assert sent is not None, "still open"


def test_a_half_sent_head_is_closed_after_the_header_timeout(edge: Served) -> None:
    """Slowloris: a head sent a few bytes at a time never completes; the deadline is for the
    whole head, so trickling does not extend it."""
    with edge.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: edge\r\n")
        started = time.monotonic()
        sent = None
        while time.monotonic() - started < HEADER_TIMEOUT_S + 4:
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                sent = b""
                break
            sent = _closed_within(sock, 0.25)
            if sent is not None:
                break
    assert sent is not None, "still open"
    assert sent == b"" or sent.startswith(b"HTTP/1.1 408"), sent[:200]


def test_an_idle_keep_alive_connection_is_closed(edge: Served) -> None:
    with edge.connect() as sock:
        sock.sendall(HEALTH_REQUEST)
        assert _response(sock).startswith(b"HTTP/1.1 200")
        assert _closed_within(sock, KEEP_ALIVE_TIMEOUT_S + 1.5) is not None, "still open"


def test_connections_per_address_are_capped(edge: Served) -> None:
    holders = [edge.connect(source=GREEDY_CLIENT) for _ in range(CONNECTIONS_PER_ADDRESS)]
    try:
        for sock in holders:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a head on its way
        with edge.connect(source=GREEDY_CLIENT) as extra:
            refused = _closed_within(extra, 1.0)
        assert refused is not None, "the connection above the cap was kept"
        assert refused.startswith(b"HTTP/1.1 429"), refused[:200]
        assert b"retry-after:" in refused.lower()
        # Another client is served meanwhile.
        assert _send_head(edge, HEALTH_REQUEST).startswith(b"HTTP/1.1 200")
        holders.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the close within a loop iteration
            with edge.connect(source=GREEDY_CLIENT) as again:
                again.sendall(HEALTH_REQUEST)
                response = _response(again)
            if response.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
    finally:
        for sock in holders:
            sock.close()


async def test_followers_of_replies_are_capped_per_user(
    llm_settings: Settings, fake_provider: FakeProviderServer
) -> None:
    """Re-attaching to a running reply holds a follower slot until the follower leaves; above
    the cap, 429 with Retry-After, and a slot given back is usable again."""
    settings = llm_settings.model_copy(update={"max_followers_per_user": 2})
    fake_provider.script(Reply(tokens=[f" t{i}" for i in range(200)], interval_s=0.05))
    with ThreadedServer(create_app(settings)) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            user = await register_user(client, "followers")
            session = await client.post("/sessions", json={"title": "f"}, headers=user.headers)
            assert session.status_code in (200, 201), session.text
            async with open_chat_stream(
                client, user.headers, read_deltas=1, session_id=session.json()["id"], prompt="x"
            ) as live:
                url = f"/chat/stream/{live.message_id}"
                first = client.stream("GET", url, headers=user.headers)
                second = client.stream("GET", url, headers=user.headers)
                async with first as one, second as two:
                    assert (one.status_code, two.status_code) == (200, 200)
                    r = await client.get(url, headers=user.headers)
                    assert r.status_code == 429, r.text
                    assert int(r.headers["retry-after"]) >= 1
                    assert "followers" in r.json()["detail"]
                deadline = asyncio.get_running_loop().time() + 5
                while True:  # both left: their slots are free again
                    async with client.stream("GET", url, headers=user.headers) as again:
                        status = again.status_code
                    if status == 200 or asyncio.get_running_loop().time() > deadline:
                        break
                    await asyncio.sleep(0.05)
                assert status == 200
