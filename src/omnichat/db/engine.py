"""Engine construction for SQLite (embedded default) and PostgreSQL.

SQLite goes through ``sqlean`` (a drop-in sqlite3 that can load extensions such as sqlite-vec; the
stdlib build here cannot) wrapped in aiosqlite. We take transaction control away from the driver so
that write requests open with ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes
fails at once with SQLITE_BUSY when another connection committed in between, and the busy timeout
does not help with that upgrade.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import sqlean
import sqlite_vec
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from omnichat.private_files import create_private_file, make_private_dirs
from omnichat.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000
INLINE_WRITER_BUSY_TIMEOUT_MS = 250
_IMMEDIATE = "omnichat_begin_immediate"


def as_sqlite3_error(error: sqlean.Error) -> sqlite3.Error:
    """``sqlean``'s exception as the stdlib ``sqlite3`` class of the same name: SQLAlchemy's
    aiosqlite dialect recognises (and wraps, e.g. as ``sqlalchemy.exc.IntegrityError``) only
    the latter; unwrapped, a constraint failure or a locked database became a 500."""
    translated_class = getattr(sqlite3, type(error).__name__, sqlite3.DatabaseError)
    translated: sqlite3.Error = translated_class(*error.args)
    for attribute in ("sqlite_errorcode", "sqlite_errorname"):
        if hasattr(error, attribute):
            setattr(translated, attribute, getattr(error, attribute))
    return translated


class SQLiteConnection(aiosqlite.Connection):
    """An aiosqlite connection to a ``sqlean`` database, its errors in ``sqlite3``'s classes."""

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        except sqlean.Error as error:
            raise as_sqlite3_error(error) from error


class InlineSQLiteConnection(SQLiteConnection):
    """An aiosqlite connection whose statements run on the event loop's own thread.

    SQLite answers this app's statements in microseconds, while each aiosqlite thread hop costs
    ~40 us of CPU (three per statement) and far more under load, when a pool of threads contends
    for the GIL: a request's auth lookup cost ~2 ms of CPU that way. Safe where a statement never
    waits for a lock: reads (under WAL a reader never waits for the writer), and the single
    writer connection of a process that is the only worker (see ``create_database``).
    Connecting and closing still go through aiosqlite's thread.
    """

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        try:
            return fn(*args, **kwargs)
        except sqlean.Error as error:
            raise as_sqlite3_error(error) from error


class InlineAsyncSession(AsyncSession):
    """A session on an inline connection, closed in place.

    SQLAlchemy closes a session at the end of ``async with`` in a task of its own behind
    ``asyncio.shield``, so that a cancelled caller cannot abandon the close halfway. That costs
    three event-loop iterations, and under load each iteration waits behind every other request's
    work (a streamed request opens three sessions before its first token). A close on an inline
    connection has no point where it could be suspended, hence none where a cancellation could
    land: awaiting it directly is the same close, minus the task and the shield.
    """

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        await self.close()


def _sqlite_engine(
    url: str, pool_size: int, *, inline: bool = False, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> AsyncEngine:
    parsed = make_url(url)
    database = parsed.database or ":memory:"
    if database != ":memory:":
        make_private_dirs(Path(database).parent)
        create_private_file(Path(database))

    def connect() -> Any:
        connection = sqlean.connect(
            database,
            check_same_thread=False,
            isolation_level=None,
            timeout=busy_timeout_ms / 1000,
        )
        # sqlite-vec: the vec0 vector tables live in the same file as everything else.
        connection.enable_load_extension(True)
        sqlite_vec.load(connection)
        connection.enable_load_extension(False)
        return connection

    connection_class = InlineSQLiteConnection if inline else SQLiteConnection

    async def async_creator() -> aiosqlite.Connection:
        return await connection_class(connect, iter_chunk_size=64)

    engine = create_async_engine(
        url, async_creator=async_creator, pool_size=pool_size, max_overflow=0, pool_timeout=30
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN DEFERRED")

    return engine


def _postgres_engine(url: str, pool_size: int) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def create_engine_from_url(url: str, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, pool_size)
    if url.startswith("postgresql"):
        return _postgres_engine(url, pool_size)
    raise ValueError(f"unsupported database URL scheme: {make_url(url).drivername}")


@dataclass(frozen=True)
class Database:
    """The session factories: ``reader`` for reads, ``writer`` for transactions that write.

    On SQLite the writer has its own engine with ONE connection whose transactions begin with
    ``BEGIN IMMEDIATE``. SQLite allows one writer at a time anyway; queueing for that connection
    in the (asyncio) pool, taken at the first statement and given back at commit, replaces
    SQLite's busy handler, which sleeps up to 100 ms at a time while the lock is contended.
    Reads run beside it on the reader engine (WAL).
    """

    engine: AsyncEngine
    reader: async_sessionmaker[AsyncSession]
    writer: async_sessionmaker[AsyncSession]
    writer_engine: AsyncEngine | None = None

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.writer_engine is not None:
            await self.writer_engine.dispose()


def create_database(settings: Settings) -> Database:
    url = settings.resolved_database_url
    if not settings.is_sqlite:
        engine = create_engine_from_url(url, settings.db_pool_size)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        return Database(engine=engine, reader=sessions, writer=sessions)
    engine = _sqlite_engine(url, settings.db_pool_size, inline=True)
    # One process (no Redis, so no sibling workers): its single writer connection never waits
    # for a lock held in-process, so writes run inline too, with a short busy timeout for the
    # rare outside writer (a 503 then, not a stalled loop). Several workers share the file and
    # do wait for each other: their writes keep aiosqlite's thread.
    single_process = settings.redis_url is None
    writer_engine = _sqlite_engine(
        url,
        pool_size=1,
        inline=single_process,
        busy_timeout_ms=INLINE_WRITER_BUSY_TIMEOUT_MS if single_process else SQLITE_BUSY_TIMEOUT_MS,
    ).execution_options(**{_IMMEDIATE: True})
    return Database(
        engine=engine,
        reader=async_sessionmaker(engine, expire_on_commit=False, class_=InlineAsyncSession),
        writer=async_sessionmaker(
            writer_engine,
            expire_on_commit=False,
            class_=InlineAsyncSession if single_process else AsyncSession,
        ),
        writer_engine=writer_engine,
    )
