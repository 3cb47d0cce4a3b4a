"""Reading a session's history for the context: newest first, a page at a time, only as far back
as could still be sent. Whatever the budget, the request built from what is read is the request
built from the whole session (both backends)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from omnichat.auth.models import User
from omnichat.chats.models import Message, MessageStatus
from omnichat.chats.service import HISTORY_PAGE_ROWS
from omnichat.container import Container
from omnichat.db.base import utcnow
from omnichat.db.unit_of_work import unit_of_work
from omnichat.llm.context import StoredTurn, clean_history, fit_to_budget
from tests.conftest import unique_email

EXCHANGES = 260  # 520 rows: more than two pages


async def _long_session(container: Container) -> tuple[str, str, list[StoredTurn]]:
    """A session of EXCHANGES exchanges of varied length, some of them broken (a failed reply,
    a reply still streaming, an empty one), all created within the same second in places, so
    that ties on created_at are broken by id. Returns the whole history, oldest first."""
    base = utcnow() - timedelta(hours=1)
    async with unit_of_work(container.database.writer) as db:
        user = User(email=unique_email("history"), password_hash="not-a-login")
        db.add(user)
        await db.flush()
        session_id = (await container.chats.create_session(db, user.id, "long")).id
        for index in range(EXCHANGES):
            prompt_message, reply = await container.chats.add_exchange(
                db,
                user.id,
                session_id,
                prompt=f"question {index} " + "q" * (index % 37) * 9,
                reply_model="local:echo",
            )
            status = MessageStatus.COMPLETE.value
            if index % 11 == 3:
                status = MessageStatus.ERROR.value
            elif index % 29 == 5:
                status = MessageStatus.STREAMING.value
            content = "" if index % 17 == 8 else f"answer {index} " + "a" * (index % 23) * 13
            # Ties: three exchanges (six rows) share a timestamp, so a page boundary splits them.
            at = base + timedelta(seconds=index // 3)
            for message_id, values in (
                (prompt_message.id, {"created_at": at}),
                (reply.id, {"created_at": at, "content": content, "status": status}),
            ):
                await db.execute(update(Message).where(Message.id == message_id).values(**values))
    everything = await container.generation.load_history(user.id, session_id, token_budget=10**9)
    assert len(everything) == 2 * EXCHANGES
    return user.id, session_id, everything


@pytest.mark.parametrize("budget", [50, 700, 3_000, 9_000, 40_000, 10**9])
async def test_the_request_built_from_what_is_read_is_the_one_built_from_everything(
    container: Container, budget: int
) -> None:
    user_id, session_id, everything = await _long_session(container)
    read = await container.generation.load_history(user_id, session_id, token_budget=budget)
    assert read == everything[len(everything) - len(read) :]  # a suffix, oldest first
    expected = fit_to_budget(clean_history(everything), "next", system=None, budget_tokens=budget)
    assert fit_to_budget(clean_history(read), "next", system=None, budget_tokens=budget) == (
        expected
    )
    if budget < 3_000:  # fits in the first page: one page read, not the whole session
        assert len(read) == HISTORY_PAGE_ROWS
    if budget == 10**9:
        assert len(read) == len(everything)


async def test_a_foreign_or_missing_session_reads_as_empty_without_the_owner_check(
    container: Container,
) -> None:
    _, session_id, _ = await _long_session(container)
    assert (
        await container.generation.load_history(
            "someone-else", session_id, token_budget=10**9, check_owner=False
        )
        == []
    )
