"""Test fixtures: the real app on a real database, SQLite and PostgreSQL (pgserver).

Every test creates its own users (unique emails), so tests never see each other's data and the
app's real commit path is what gets exercised.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from omnichat.app import container_of, create_app
from omnichat.cli import migrate
from omnichat.container import Container
from omnichat.settings import Settings
from tests.redis_server import RedisServer

# One export of the local embedder to ONNX for the whole run (and later runs: the cache checks
# itself), not one per test data dir. Subprocess servers inherit it.
os.environ.setdefault(
    "OMNICHAT_MODEL_CACHE_DIR",
    str(Path(tempfile.gettempdir()) / f"omnichat-test-models-{os.getuid()}"),
)

# Every in-process test client is one address (127.0.0.1): the per-address limits on logins and
# registrations are tested on apps of their own (tests/test_login_throttle.py).
os.environ.setdefault("OMNICHAT_LOGIN_ADDRESS_LIMIT", "100000/minute")
os.environ.setdefault("OMNICHAT_REGISTER_ADDRESS_LIMIT", "100000/minute")

pytest_plugins = ["tests.fakes.fixtures", "tests.s3_server"]

TEST_SECRET = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
PASSWORD = "correct horse battery staple"
BACKENDS = [
    b.strip() for b in os.environ.get("OMNICHAT_TEST_BACKENDS", "sqlite,postgres").split(",")
]


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server
    server.cleanup()


def postgres_url(server: Any, database: str) -> str:
    server.psql(f"DROP DATABASE IF EXISTS {database};")
    server.psql(f"CREATE DATABASE {database};")
    socket_dir = server.get_uri().split("host=", 1)[1]
    return f"postgresql+asyncpg://postgres:@/{database}?host={socket_dir}"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "omnichat.db"
        return f"sqlite+aiosqlite:///{path}"
    server = request.getfixturevalue("pg_server")
    return postgres_url(server, f"omnichat_{uuid.uuid4().hex[:8]}")


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "access_log": False,
    }
    values.update(overrides)
    return Settings(**values)


def lifespan_of(application: FastAPI) -> LifespanManager:
    """``application`` started and stopped as a server would. A cold start imports every
    provider SDK (seconds on a busy two-core runner): asgi-lifespan's 5 s default is too short."""
    return LifespanManager(application, startup_timeout=60, shutdown_timeout=60)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(database_url, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    await migrate(settings)
    application = create_app(settings)
    async with lifespan_of(application):
        yield application


@pytest.fixture(scope="session")
def container(app: FastAPI) -> Container:
    return container_of(app)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class TestUser:
    __test__ = False

    email: str
    password: str
    id: str
    access_token: str
    refresh_token: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def age_rotation(
    settings: Settings, refresh_token: str, seconds: float | None = None
) -> None:
    """Moves the rotation of ``refresh_token`` ``seconds`` into the past (by default just past
    the reuse leeway, which forgives a retry or a second tab: tests/test_refresh_leeway.py),
    through a connection of its own (the app may run on another thread's loop)."""
    from datetime import timedelta

    from sqlalchemy import update

    from omnichat.auth.models import RefreshToken
    from omnichat.auth.tokens import hash_refresh_token
    from omnichat.db.base import utcnow
    from omnichat.db.engine import create_database

    if seconds is None:
        seconds = settings.refresh_reuse_leeway_s + 1
    database = create_database(settings)
    try:
        async with database.writer() as db:
            await db.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
                .values(rotated_at=utcnow() - timedelta(seconds=seconds))
            )
            await db.commit()
    finally:
        await database.dispose()


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def register_user(
    client: httpx.AsyncClient,
    prefix: str = "user",
    password: str = PASSWORD,
    *,
    email: str | None = None,
    **profile: str,
) -> TestUser:
    """Registers a new user through seed 003 (with ``profile`` fields such as ``first_name``;
    a unique email unless ``email``) and logs in on ``client`` (whichever app or server it
    talks to)."""
    email = email or unique_email(prefix)
    r = await client.post("/auth/register", json={"email": email, "password": password, **profile})
    assert r.status_code == 200, r.text
    user_id = r.json()["id"]
    r = await client.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    tokens = r.json()
    return TestUser(email, password, user_id, tokens["access_token"], tokens["refresh_token"])


async def login_headers(client: httpx.AsyncClient, prefix: str = "user") -> dict[str, str]:
    """A new user's bearer-token headers (see ``register_user``)."""
    return (await register_user(client, prefix)).headers


UserFactory = Callable[..., Awaitable[TestUser]]


@pytest.fixture
def make_user(client: httpx.AsyncClient) -> UserFactory:
    """Registers through seed 003 and logs in; returns the user with a token pair."""

    async def _make(prefix: str = "user", password: str = PASSWORD) -> TestUser:
        return await register_user(client, prefix, password, first_name="Test", last_name="User")

    return _make


@pytest.fixture
async def alice(make_user: UserFactory) -> TestUser:
    return await make_user("alice")


@pytest.fixture
async def bob(make_user: UserFactory) -> TestUser:
    return await make_user("bob")


# -- an app whose four providers are the fake provider servers --------------------------------

FAKE_KEYS = {
    "openai": "sk-fake-openai-key-0123456789",
    "anthropic": "sk-ant-fake-key-0123456789",
    "gemini": "fake-gemini-key-0123456789",
    "cohere": "fake-cohere-key-0123456789",
}


def provider_settings(server: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, key in FAKE_KEYS.items():
        values[f"{name}_api_key"] = key
        values[f"{name}_base_url"] = server.base_url_for(name)
    return values


LLM_TEST_SETTINGS: dict[str, Any] = {
    "fallback_models": ["anthropic:claude-haiku-5-5"],
    "llm_retry_base_delay_s": 0.01,
    "llm_retry_max_delay_s": 0.05,
    "llm_max_retry_after_s": 2.0,
    "llm_first_token_timeout_s": 2.0,
    "llm_idle_timeout_s": 2.0,
    "stream_keepalive_s": 0.2,
    "generation_rate_limit": "100000/minute",
    "max_concurrent_generations": 100,
    "context_tokens": 4000,
    "max_output_tokens": 1000,
}


class ThreadedServer:
    """The real app under uvicorn on a loopback port, in a thread with its own event loop:
    streaming tests need real partial reads and disconnects, which ASGITransport cannot do."""

    def __init__(self, application: FastAPI) -> None:
        import socket

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            application, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


@pytest.fixture(scope="session")
def llm_settings(
    app: FastAPI,  # migrations applied
    database_url: str,
    fake_provider_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    return make_settings(
        database_url,
        tmp_path_factory.mktemp("llm-data"),
        **provider_settings(fake_provider_server),
        **LLM_TEST_SETTINGS,
    )


@pytest.fixture(scope="session")
def llm_server(llm_settings: Settings) -> Iterator[ThreadedServer]:
    with ThreadedServer(create_app(llm_settings)) as server:
        yield server


@pytest.fixture
async def llm_client(
    llm_server: ThreadedServer, fake_provider: Any
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=llm_server.base_url, timeout=30) as c:
        yield c


@pytest.fixture
def make_llm_user(llm_client: httpx.AsyncClient) -> UserFactory:
    async def _make(prefix: str = "llm", password: str = PASSWORD) -> TestUser:
        return await register_user(llm_client, prefix, password)

    return _make


# -- Redis -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a loopback port, shared by the session's tests."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()
