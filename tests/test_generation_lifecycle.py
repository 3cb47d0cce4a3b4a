"""Replies across the server's lifetime: graceful shutdown and recovery after a crash."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from omnichat.app import container_of, create_app
from omnichat.auth.models import User
from omnichat.chats.models import Message
from omnichat.container import Container
from omnichat.db.base import utcnow
from omnichat.db.unit_of_work import unit_of_work
from omnichat.generation.service import INTERRUPTED
from omnichat.llm.registry import ModelRef
from omnichat.settings import Settings
from tests.conftest import lifespan_of, unique_email
from tests.fakes import FakeProviderServer, Reply


async def _user_and_session(container: Container) -> tuple[str, str]:
    async with unit_of_work(container.database.writer) as db:
        user = User(email=unique_email("life"), password_hash="not-a-login")
        db.add(user)
        await db.flush()
        session = await container.chats.create_session(db, user.id, "lifecycle")
        return user.id, session.id


async def _stored(container: Container, message_id: str) -> Message:
    async with container.database.reader() as db:
        return (await db.execute(select(Message).where(Message.id == message_id))).scalar_one()


async def _reply_across_shutdown(settings: Settings, grace_s: float) -> Message:
    """Starts a stored reply, ends the app's lifespan while it runs, and returns what a freshly
    started app finds in the database."""
    app = create_app(settings.model_copy(update={"shutdown_grace_s": grace_s}))
    container = container_of(app)
    async with lifespan_of(app):
        user_id, session_id = await _user_and_session(container)
        reply, _ = await container.generation.start_stored_reply(
            user_id, session_id, "hello", ModelRef("openai", "gpt-5.4-mini")
        )
    fresh = create_app(settings)
    async with lifespan_of(fresh):
        return await _stored(container_of(fresh), reply.message_id)


async def test_shutdown_lets_running_replies_finish(
    llm_settings: Settings, fake_provider: FakeProviderServer
) -> None:
    tokens = [f" s{i}" for i in range(10)]
    fake_provider.script(Reply(tokens=tokens, interval_s=0.05))
    stored = await _reply_across_shutdown(llm_settings, grace_s=10.0)
    assert stored.status == "complete"
    assert stored.content == "".join(tokens)


async def test_shutdown_stops_and_stores_replies_that_overrun_the_grace(
    llm_settings: Settings, fake_provider: FakeProviderServer
) -> None:
    tokens = [f" t{i}" for i in range(200)]
    fake_provider.script(Reply(tokens=tokens, interval_s=0.05))
    stored = await _reply_across_shutdown(llm_settings, grace_s=0.3)
    assert stored.status == "error"
    assert stored.error == "The server stopped while replying"
    assert 0 < len(stored.content) < len("".join(tokens))


async def test_replies_left_streaming_by_a_dead_process_are_marked_on_start(
    settings: Settings, app: object, tmp_path: Path
) -> None:
    container = container_of(app)  # type: ignore[arg-type]
    user_id, session_id = await _user_and_session(container)
    async with unit_of_work(container.database.writer) as db:
        _, orphan = await container.chats.add_exchange(
            db, user_id, session_id, prompt="q1", reply_model="openai:x"
        )
        _, recent = await container.chats.add_exchange(
            db, user_id, session_id, prompt="q2", reply_model="openai:x"
        )
        await db.execute(
            update(Message)
            .where(Message.id == orphan.id)
            .values(updated_at=utcnow() - timedelta(hours=2))
        )
    restarted = create_app(settings)
    async with lifespan_of(restarted):
        pass
    assert (await _stored(container, orphan.id)).status == "error"
    assert (await _stored(container, orphan.id)).error == INTERRUPTED
    # A recent one may belong to a live worker: left alone.
    assert (await _stored(container, recent.id)).status == "streaming"


async def test_a_running_reply_is_kept_fresh_while_an_orphan_is_marked_without_restart(
    llm_settings: Settings, fake_provider: FakeProviderServer
) -> None:
    """The heartbeat refreshes this process's running replies (however old their row looks)
    and marks a row no process refreshes, while the app keeps running."""
    tokens = [f" h{i}" for i in range(40)]
    fake_provider.script(Reply(tokens=tokens, interval_s=0.05))
    app = create_app(llm_settings.model_copy(update={"reply_heartbeat_s": 0.2}))
    container = container_of(app)
    async with lifespan_of(app):
        user_id, session_id = await _user_and_session(container)
        async with unit_of_work(container.database.writer) as db:
            _, orphan = await container.chats.add_exchange(
                db, user_id, session_id, prompt="q", reply_model="openai:x"
            )
        reply, _ = await container.generation.start_stored_reply(
            user_id, session_id, "hello", ModelRef("openai", "gpt-5.4-mini")
        )
        # Older than this app's cutoff (3 x 0.2 s) but younger than that of the session's
        # other apps on the same database (3 x 30 s): only this app's heartbeat may mark them.
        async with unit_of_work(container.database.writer) as db:
            await db.execute(
                update(Message)
                .where(Message.id.in_([orphan.id, reply.message_id]))
                .values(updated_at=utcnow() - timedelta(seconds=30))
            )
        deadline = time.monotonic() + 10
        while (await _stored(container, orphan.id)).status == "streaming":
            assert time.monotonic() < deadline, "the orphan was never marked"
            await asyncio.sleep(0.05)
        assert (await _stored(container, orphan.id)).error == INTERRUPTED
        running = await _stored(container, reply.message_id)
        assert running.status == "streaming"  # refreshed, not marked
        assert running.updated_at > utcnow() - timedelta(seconds=10)
        while (await _stored(container, reply.message_id)).status == "streaming":
            assert time.monotonic() < deadline, "the running reply never finished"
            await asyncio.sleep(0.05)
        finished = await _stored(container, reply.message_id)
    assert finished.status == "complete"
    assert finished.content == "".join(tokens)
