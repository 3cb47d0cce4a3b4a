"""The one place transactions end."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from omnichat.errors import AppError

logger = logging.getLogger("omnichat.db")
_AFTER_COMMIT = "omnichat.after_commit"

AfterCommit = Callable[[], Awaitable[None]]


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once ``session``'s transaction has committed, before ``unit_of_work``
    returns (so before a request's response); never if it rolls back. For effects outside the
    database that must follow the committed state, such as stopping the live reply of a
    message that was just deleted."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


async def _run_after_commit(session: AsyncSession) -> None:
    callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            # The transaction stands; what follows it is best effort and must be logged.
            logger.exception("an after-commit action failed")


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Commit on success, roll back on error, unless the error says its changes must stand
    (e.g. a token family revoked on reuse). Request dependencies and background jobs use it.
    After a commit, the ``after_commit`` callbacks run."""
    async with factory() as session:
        try:
            yield session
        except AppError as exc:
            if exc.keep_changes:
                await session.commit()
                await _run_after_commit(session)
            else:
                session.info.pop(_AFTER_COMMIT, None)
                await session.rollback()
            raise
        except BaseException:
            session.info.pop(_AFTER_COMMIT, None)
            await session.rollback()
            raise
        else:
            await session.commit()
            await _run_after_commit(session)
