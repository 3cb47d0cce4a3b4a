"""Engine construction for SQLite (embedded default) and PostgreSQL.

SQLite goes through ``sqlean`` (a drop-in sqlite3 that can load extensions such as sqlite-vec; the
stdlib build here cannot) wrapped in aiosqlite. We take transaction control away from the driver so
that write requests open with ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes
fails at once with SQLITE_BUSY when another connection committed in between, and the busy timeout
does not help with that upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import sqlean
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from omnichat.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000
_IMMEDIATE = "omnichat_begin_immediate"


def _sqlite_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    database = parsed.database or ":memory:"
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)

    def connect() -> Any:
        return sqlean.connect(
            database,
            check_same_thread=False,
            isolation_level=None,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        )

    async def async_creator() -> aiosqlite.Connection:
        return await aiosqlite.Connection(connect, iter_chunk_size=64)

    engine = create_async_engine(url, async_creator=async_creator, pool_pre_ping=False)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgres_engine(url: str, pool_size: int) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def create_engine_from_url(url: str, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql"):
        return _postgres_engine(url, pool_size)
    raise ValueError(f"unsupported database URL scheme: {make_url(url).drivername}")


@dataclass(frozen=True)
class Database:
    """The engine and the two session factories: ``reader`` for safe methods, ``writer`` for the
    rest (on SQLite it takes the write lock when its transaction begins)."""

    engine: AsyncEngine
    reader: async_sessionmaker[AsyncSession]
    writer: async_sessionmaker[AsyncSession]

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def create_database(settings: Settings) -> Database:
    engine = create_engine_from_url(settings.resolved_database_url, settings.db_pool_size)
    writer_engine = engine.execution_options(**{_IMMEDIATE: True}) if settings.is_sqlite else engine
    return Database(
        engine=engine,
        reader=async_sessionmaker(engine, expire_on_commit=False),
        writer=async_sessionmaker(writer_engine, expire_on_commit=False),
    )
