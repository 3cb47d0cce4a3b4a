"""A stopped server leaves nothing for multiprocessing's resource tracker to clean up: every
sandbox pool it started, including pools replaced after their workers died, has closed its
channel (two named semaphores) by the time the process ends, even though uvicorn ends it with
the SIGTERM it caught (no ``atexit``, no last garbage collection)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import register_user
from tests.docs_factory import make_pdf
from tests.test_cli import OMNICHAT, _env, _free_port

START_TIMEOUT_S = 120.0


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie nobody has reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ended(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _running(pid)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``omnichat serve`` on SQLite; its stdout and stderr (and its children's) in one log."""
    port, log_path = _free_port(), tmp_path / "server.log"
    env = _env(
        tmp_path / "data",
        OMNICHAT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'stop.db'}",
        OMNICHAT_ACCESS_LOG="false",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*OMNICHAT, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"server did not start:\n{log_path.read_text()[-3000:]}")
        yield process, base, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


async def test_a_stopped_server_leaks_no_semaphores_even_after_its_pools_broke(
    server: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, base, log_path = server
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        user = await register_user(client, "stop")

        async def upload(word: str) -> None:
            r = await client.post(
                "/upload/document",
                files={"file": ("a.pdf", make_pdf([f"A page about {word}."]), "application/pdf")},
                headers=user.headers,
            )
            assert r.status_code == 200, r.text

        await upload("lighthouses")  # starts the parser and chunker pools
        children = {pid: _command_line(pid) for pid in _children(process.pid)}
        workers = [pid for pid, line in children.items() if "--multiprocessing-fork" in line]
        (tracker,) = [pid for pid, line in children.items() if "resource_tracker" in line]
        assert len(workers) >= 2, children
        for worker in workers:  # killed while idle: each of their pools breaks and is replaced
            os.kill(worker, signal.SIGKILL)
        await upload("harbours")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    # The tracker reports what was left when the last process holding its pipe has ended.
    assert _ended(tracker, timeout_s=30)
    log = log_path.read_text()
    assert "died while idle" in log
    assert "leaked semaphore" not in log, log[-3000:]
