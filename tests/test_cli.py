"""The installed commands, run as a user would: `omnichat migrate`, `omnichat serve`,
`python -m omnichat`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omnichat.settings import (
    InsecureSecretKeyError,
    Settings,
    check_secret_key,
    load_or_create_secret_key,
)
from tests.conftest import PASSWORD, postgres_url

OMNICHAT = [sys.executable, "-m", "omnichat"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OMNICHAT_") or k == "OMNICHAT_MODEL_CACHE_DIR"
    }
    env["OMNICHAT_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


@pytest.fixture
def fresh_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    return postgres_url(request.getfixturevalue("pg_server"), f"cli_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def server(tmp_path: Path, fresh_database_url: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    env = _env(tmp_path / "data", OMNICHAT_DATABASE_URL=fresh_database_url)
    process = subprocess.Popen(
        [*OMNICHAT, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
        if process.poll() is not None:
            pytest.fail(f"server exited early: {process.stdout.read() if process.stdout else ''}")
    else:
        process.kill()
        pytest.fail("server did not start within 30 s")
    yield base, process
    process.terminate()
    process.wait(timeout=30)


def test_serve_migrates_and_serves(server: tuple[str, subprocess.Popen[str]]) -> None:
    base, process = server
    assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
    r = httpx.post(
        f"{base}/users/",
        json={"username": "cli", "email": "cli@example.com", "password": PASSWORD},
    )
    assert r.status_code == 200, r.text
    r = httpx.post(f"{base}/token", data={"username": "cli@example.com", "password": PASSWORD})
    assert r.status_code == 200
    assert httpx.get(f"{base}/docs").status_code == 200
    schema = httpx.get(f"{base}/openapi.json").json()
    assert "/api/sessions" in schema["paths"]
    assert "/sessions" in schema["paths"]

    r = httpx.get(f"{base}/healthz", headers={"X-Request-ID": "trace-me-123"})
    assert r.headers["x-request-id"] == "trace-me-123"
    process.terminate()
    output, _ = process.communicate(timeout=30)
    access_lines = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and '"omnichat.access"' in line
    ]
    traced = [line for line in access_lines if line["request_id"] == "trace-me-123"]
    assert traced
    assert traced[0]["path"] == "/healthz"
    assert traced[0]["status"] == 200
    assert "duration_ms" in traced[0]


def test_migrate_command_creates_sqlite_file_in_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [*OMNICHAT, "migrate"], env=_env(data_dir), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    db_file = data_dir / "omnichat.db"
    assert db_file.exists()
    import sqlite3

    with sqlite3.connect(db_file) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert {"users", "chat_sessions", "messages", "refresh_tokens", "alembic_version"} <= tables
    assert journal == "wal"
    # Idempotent.
    again = subprocess.run(
        [*OMNICHAT, "migrate"], env=_env(data_dir), capture_output=True, timeout=60
    )
    assert again.returncode == 0


def test_placeholder_secret_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [*OMNICHAT, "migrate"],
        env=_env(tmp_path, OMNICHAT_SECRET_KEY="changeme"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "placeholder" in result.stderr


@pytest.mark.parametrize(
    "field",
    [
        "generation_rate_limit",
        "failed_login_limit",
        "login_address_limit",
        "register_address_limit",
    ],
)
def test_a_rate_that_is_not_one_is_refused_at_start_up(field: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a rate such as"):
        Settings(data_dir=tmp_path, **{field: "1000000"})
    assert getattr(Settings(data_dir=tmp_path, **{field: "5/2 minutes"}), field) == "5/2 minutes"


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        Settings(secret_key="too-short")
    with pytest.raises(InsecureSecretKeyError):
        check_secret_key("changeme")


def test_generated_secret_is_private_and_stable(tmp_path: Path) -> None:
    first = load_or_create_secret_key(tmp_path)
    assert len(first) >= 32
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600
    assert load_or_create_secret_key(tmp_path) == first
    assert Settings(data_dir=tmp_path).signing_key() == first


def test_help_lists_commands() -> None:
    result = subprocess.run([*OMNICHAT, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "serve" in result.stdout
    assert "migrate" in result.stdout
