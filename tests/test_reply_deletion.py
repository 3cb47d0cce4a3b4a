"""Deleting the rows of a reply that is still being generated stops it at once: every delete of
each dialect (a session, a session's messages, one message, the account), in one process and
across two workers sharing Redis. The reply's followers get an error ending that says why, then
``[DONE]``; the user's concurrency slot is free when the delete answers; re-attach and stop
answer 404, and nothing of the reply is written back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from omnichat.accounts.service import ACCOUNT_DELETED
from omnichat.app import create_app
from omnichat.auth.models import User
from omnichat.chats.service import MESSAGES_CLEARED, REPLY_DELETED, SESSION_DELETED
from omnichat.container import Container
from omnichat.db.base import utcnow
from omnichat.db.unit_of_work import unit_of_work
from omnichat.generation.store import FinishedReplyWriter
from omnichat.ids import new_id
from omnichat.settings import Settings
from tests.conftest import PASSWORD, TestUser, ThreadedServer, register_user, unique_email
from tests.fakes import FakeProviderServer, Reply
from tests.sse import DONE, SSETranscript, open_chat_stream, read_events
from tests.test_generation import _messages, _session

# 200 tokens, 50 ms apart: ten seconds of reply, far longer than any delete takes.
TOKENS = [f" d{i}" for i in range(200)]
FULL_TEXT = "".join(TOKENS)


@dataclass(frozen=True)
class Delete:
    """One way to delete a running reply's rows: the request, its success status, why the
    reply's followers are told it ended, and whether the user is gone afterwards."""

    send: Callable[[httpx.AsyncClient, TestUser, str, str], Awaitable[httpx.Response]]
    status: int
    reason: str
    account: bool = False


def _delete(path: str, body: dict[str, Any] | None = None) -> Any:
    async def send(
        client: httpx.AsyncClient, user: TestUser, session_id: str, message_id: str
    ) -> httpx.Response:
        url = path.format(session=session_id, message=message_id)
        return await client.request("DELETE", url, json=body, headers=user.headers)

    return send


ACCOUNT = {"current_password": PASSWORD}
DELETES = {
    "session (001/003)": Delete(_delete("/sessions/{session}"), 204, SESSION_DELETED),
    "session (000)": Delete(_delete("/api/sessions/{session}"), 200, SESSION_DELETED),
    "clear messages (000)": Delete(_delete("/api/chats/session/{session}"), 200, MESSAGES_CLEARED),
    "the reply message (000)": Delete(_delete("/api/chats/{message}"), 200, REPLY_DELETED),
    "account (003)": Delete(_delete("/auth/me", ACCOUNT), 204, ACCOUNT_DELETED, account=True),
    "account (001)": Delete(_delete("/users/me/", ACCOUNT), 204, ACCOUNT_DELETED, account=True),
    "account (000)": Delete(_delete("/api/auth/me", ACCOUNT), 200, ACCOUNT_DELETED, account=True),
}


def _assert_stopped_by_delete(transcript: SSETranscript, reason: str) -> None:
    final = transcript.final
    assert final["status"] == "error"
    assert final["error"] == reason
    assert final["error_code"] == "deleted"
    assert transcript.events[-1] == DONE
    assert len(transcript.text) < len(FULL_TEXT)  # it did not run to its end


async def _follow(client: httpx.AsyncClient, user: TestUser, message_id: str) -> SSETranscript:
    """A second tab re-attached to the reply, read to its end."""
    transcript = SSETranscript()
    async with client.stream("GET", f"/chat/stream/{message_id}", headers=user.headers) as response:
        assert response.status_code == 200
        await read_events(response, transcript)
    return transcript


async def delete_while_streaming(
    producer: httpx.AsyncClient,
    deleter: httpx.AsyncClient,
    user: TestUser,
    delete: Delete,
    fake_provider: FakeProviderServer,
) -> tuple[str, str]:
    """Starts a long reply on ``producer``, follows it from a second tab on ``deleter``, deletes
    it there ``delete``'s way, and checks that both streams end at once with the reason. Returns
    (the reply's id, another session of the user's)."""
    session_id, other_session = await _session(producer, user), await _session(producer, user)
    fake_provider.script(Reply(tokens=TOKENS, interval_s=0.05))
    async with open_chat_stream(
        producer, user.headers, read_deltas=2, session_id=session_id, prompt="a long story"
    ) as live:
        message_id = live.message_id
        second_tab = asyncio.create_task(_follow(deleter, user, message_id))
        await asyncio.sleep(0.2)
        r = await delete.send(deleter, user, session_id, message_id)
        assert r.status_code == delete.status, r.text
        transcript = await live.finish()
    _assert_stopped_by_delete(transcript, delete.reason)
    _assert_stopped_by_delete(await second_tab, delete.reason)
    return message_id, other_session


async def assert_gone_and_slot_free(
    clients: tuple[httpx.AsyncClient, ...],
    user: TestUser,
    message_id: str,
    other_session: str,
    fake_provider: FakeProviderServer,
) -> None:
    """Re-attach and stop find nothing on any worker, as for a reply that never existed, and
    the user's only slot is free again: a new reply starts at once (429 if it were kept)."""
    for client in clients:
        r = await client.get(f"/chat/stream/{message_id}", headers=user.headers)
        assert r.status_code == 404
        r = await client.post(f"/chat/stop/{message_id}", headers=user.headers)
        assert r.status_code == 404
    fake_provider.script(Reply(tokens=[" ok"] * 3, interval_s=0.0))
    async with open_chat_stream(
        clients[-1], user.headers, read_deltas=1, session_id=other_session, prompt="next"
    ) as after:
        assert (await after.finish()).final["status"] == "complete"


@pytest.fixture(scope="module")
def one_slot_server(llm_settings: Settings) -> Iterator[ThreadedServer]:
    """One reply at a time per user: a slot a stopped reply kept would answer 429."""
    settings = llm_settings.model_copy(update={"max_concurrent_generations": 1})
    with ThreadedServer(create_app(settings)) as server:
        yield server


@pytest.fixture
async def one_slot_client(
    one_slot_server: ThreadedServer, fake_provider: FakeProviderServer
) -> Any:
    async with httpx.AsyncClient(base_url=one_slot_server.base_url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("kind", list(DELETES))
async def test_a_delete_stops_the_reply_it_removes(
    kind: str, one_slot_client: httpx.AsyncClient, fake_provider: FakeProviderServer
) -> None:
    delete = DELETES[kind]
    client = one_slot_client
    user, bystander = await register_user(client, "del"), await register_user(client, "by")
    message_id, other_session = await delete_while_streaming(
        client, client, user, delete, fake_provider
    )

    # Another user's reply is untouched by any of it.
    fake_provider.script(Reply(tokens=[" fine"] * 3, interval_s=0.0))
    async with open_chat_stream(client, bystander.headers, read_deltas=1, prompt="hi") as other:
        assert (await other.finish()).final["status"] == "complete"

    if delete.account:
        for path in (f"/chat/stream/{message_id}", "/sessions"):
            assert (await client.get(path, headers=user.headers)).status_code == 401
        return
    await assert_gone_and_slot_free((client,), user, message_id, other_session, fake_provider)
    # Nothing of the stopped reply was written back after the delete.
    await asyncio.sleep(0.2)
    r = await client.get("/sessions", headers=user.headers)
    sessions = {s["id"]: s for s in r.json()}
    stored = await _messages(client, user, other_session)
    assert [m["status"] for m in stored] == ["complete", "complete"]
    remaining = [sid for sid in sessions if sid != other_session]
    if delete.reason == REPLY_DELETED:
        assert [m["role"] for m in await _messages(client, user, remaining[0])] == ["user"]
    elif delete.reason == MESSAGES_CLEARED:
        assert await _messages(client, user, remaining[0]) == []
    else:
        assert remaining == []


# -- two workers sharing Redis -----------------------------------------------------------------


@pytest.fixture(scope="module")
def workers(
    llm_settings: Settings, redis_url: str
) -> Iterator[tuple[ThreadedServer, ThreadedServer]]:
    settings = llm_settings.model_copy(
        update={"redis_url": redis_url, "max_concurrent_generations": 1}
    )
    with (
        ThreadedServer(create_app(settings)) as first,
        ThreadedServer(create_app(settings)) as second,
    ):
        yield first, second


@pytest.mark.parametrize("kind", ["session (001/003)", "the reply message (000)", "account (003)"])
async def test_a_delete_on_another_worker_stops_the_reply(
    kind: str,
    workers: tuple[ThreadedServer, ThreadedServer],
    fake_provider: FakeProviderServer,
) -> None:
    """The reply runs on worker A; its second tab follows it from worker B (through Redis), and
    the delete is sent to B."""
    delete = DELETES[kind]
    first, second = workers
    async with (
        httpx.AsyncClient(base_url=first.base_url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.base_url, timeout=30) as b,
    ):
        user = await register_user(a, "redis-del")
        message_id, other_session = await delete_while_streaming(a, b, user, delete, fake_provider)
        if not delete.account:
            # The slot (shared through Redis) was given back before the delete answered.
            await assert_gone_and_slot_free((a, b), user, message_id, other_session, fake_provider)


async def test_storing_a_reply_whose_row_is_gone_does_not_fail_the_others(
    container: Container,
) -> None:
    """A reply deleted while it is being stored (too late to cancel) is stored in a batch with
    others: its UPDATE matches nothing, and the rest of the batch is written."""
    async with unit_of_work(container.database.writer) as db:
        user = User(email=unique_email("batch"), password_hash="not-a-login")
        db.add(user)
        session = await container.chats.create_session(db, user.id, "batch")
        _, kept = await container.chats.add_exchange(
            db, user.id, session.id, prompt="hi", reply_model="local:echo"
        )
    writer = FinishedReplyWriter(container.database)
    now = utcnow()
    rows = [
        {"id": new_id(), "content": "lost", "status": "complete", "updated_at": now},
        {"id": kept.id, "content": "kept", "status": "complete", "updated_at": now},
    ]
    await asyncio.gather(*(writer.store(row, session.id) for row in rows))
    stored = await container.generation.stored_message(user.id, kept.id)
    assert stored is not None
    assert (stored.content, stored.status) == ("kept", "complete")
