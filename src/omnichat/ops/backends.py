"""Every backend the configuration names, checked the same way by ``/readyz``, by start-up and
by ``omnichat check``: the database, Redis (when configured), the blob store and an external
vector store (Pinecone; pgvector and sqlite-vec live in the database). Model providers are not
backends here: one provider down is a fallback's business, not a reason to take the server
out of rotation.

A check's ``target`` says where the backend is with every secret masked (a URL's password, an
API key: never printed), and a failure's ``reason`` is one short line without a traceback.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omnichat.errors import AppError
from omnichat.ops.urls import masked_url, scrubbed, url_secrets

if TYPE_CHECKING:
    from omnichat.blobs.base import BlobStore
    from omnichat.container import Container
    from omnichat.db.engine import Database
    from omnichat.settings import Settings

CHECK_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class BackendCheck:
    """``probe()`` returns when the backend answers and raises otherwise."""

    name: str
    target: str
    probe: Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class BackendStatus:
    name: str
    target: str
    ok: bool
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "ok": self.ok, "reason": self.reason}


def failure_reason(exc: BaseException) -> str:
    """One short line: what failed, never a secret and never a traceback."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, AppError):
        return exc.detail
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc and not isinstance(exc, AppError):
        inner = failure_reason(cause)
        if inner != type(cause).__name__:
            return inner
    # Driver messages name hosts and rules, not passwords; keep only their first line.
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:200]


def backend_checks(
    settings: Settings, database: Database, blobs: BlobStore, vector_store: object
) -> list[BackendCheck]:
    """The checks of every backend the configuration uses."""
    checks = [BackendCheck("database", masked_url(settings.resolved_database_url), database.ping)]
    if settings.redis_url:
        checks.append(
            BackendCheck("redis", masked_url(settings.redis_url), _redis_probe(settings.redis_url))
        )
    checks.append(BackendCheck("blob store", blobs.target, blobs.check))
    store: Any = vector_store
    if callable(getattr(store, "check", None)):  # an external store; the others are the database
        checks.append(BackendCheck(f"vector store ({store.name})", store.target, store.check))
    return checks


def settings_secrets(settings: Settings) -> list[str]:
    """The passwords of every backend URL the settings name (``urls.url_secrets``)."""
    return url_secrets(
        [
            settings.resolved_database_url,
            settings.redis_url,
            settings.blob_url,
            settings.s3_endpoint_url,
            settings.pinecone_host,
        ]
    )


def container_checks(container: Container) -> list[BackendCheck]:
    return backend_checks(
        container.settings, container.database, container.blobs, container.vector_index.store
    )


def _redis_probe(url: str) -> Callable[[], Awaitable[Any]]:
    async def ping() -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_S)
        try:
            await client.ping()
        finally:
            await client.aclose()

    return ping


async def run_checks(
    checks: list[BackendCheck],
    timeout_s: float = CHECK_TIMEOUT_S,
    secrets: Iterable[str] = (),
) -> list[BackendStatus]:
    """Every check at once, each bounded by ``timeout_s``; ``secrets`` (``settings_secrets``)
    are masked in every reason."""
    secrets = list(secrets)

    async def run(check: BackendCheck) -> BackendStatus:
        try:
            await asyncio.wait_for(check.probe(), timeout_s)
        except Exception as exc:
            reason = scrubbed(failure_reason(exc), secrets)
            return BackendStatus(check.name, scrubbed(check.target, secrets), False, reason)
        return BackendStatus(check.name, scrubbed(check.target, secrets), True)

    return list(await asyncio.gather(*(run(check) for check in checks)))
