"""Storing finished replies with group commit: under load many replies end at about the same
time, and one write transaction for all of them costs little more than one for each (on
SQLite every write transaction queues for the single writer connection)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, update

from omnichat.chats.models import ChatSession, Message
from omnichat.db.engine import Database
from omnichat.db.unit_of_work import unit_of_work

MAX_BATCH = 500
_messages = cast(Table, Message.__table__)
_sessions = cast(Table, ChatSession.__table__)
_UPDATE_MESSAGE = update(_messages).where(_messages.c.id == bindparam("key"))
_BUMP_SESSION = update(_sessions).where(_sessions.c.id == bindparam("key"))


class FinishedReplyWriter:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._pending: list[tuple[dict[str, Any], str | None, asyncio.Future[None]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def store(self, row: dict[str, Any], session_id: str | None) -> None:
        """``row``: the message's ``id`` and the columns to set. Returns once committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, session_id, done))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        # Whatever piles up while one batch commits goes out together in the next.
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                await self._write([row for row, _, _ in batch], _session_bumps(batch))
            except Exception as exc:
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _write(self, rows: list[dict[str, Any]], bumps: list[dict[str, Any]]) -> None:
        # Core executemany, no rowcount check: a reply whose session was deleted meanwhile
        # matches no row, and must not fail the others in its batch.
        async with unit_of_work(self._database.writer) as db:
            await db.execute(_UPDATE_MESSAGE, [_keyed(row) for row in rows])
            if bumps:
                await db.execute(_BUMP_SESSION, [_keyed(bump) for bump in bumps])


def _session_bumps(
    batch: list[tuple[dict[str, Any], str | None, asyncio.Future[None]]],
) -> list[dict[str, Any]]:
    latest: dict[str, datetime] = {}
    for row, session_id, _ in batch:
        if session_id is not None:
            latest[session_id] = max(row["updated_at"], latest.get(session_id, row["updated_at"]))
    return [{"id": sid, "updated_at": when} for sid, when in latest.items()]


def _keyed(row: dict[str, Any]) -> dict[str, Any]:
    """The row's id as the WHERE parameter; every other key is a column to set."""
    values = {k: v for k, v in row.items() if k != "id"}
    values["key"] = row["id"]
    return values
