"""Deleting the rows of a reply that is still being generated stops it at once: every delete of
each dialect (a session, a session's messages, one message, the account), in one process and
across two workers sharing Redis. The reply's followers get an error ending that says why, then
``[DONE]``; the user's concurrency slot is free when the delete answers; re-attach and stop
answer 404, and nothing of the reply is written back."""

from __future__ import annotations

import asyncio
import json
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


@pytest.mark.parametrize(
    "kind", ["session (001/003)", "clear messages (000)", "the reply message (000)"]
)
async def test_a_deleted_finished_reply_is_gone_on_every_worker(
    kind: str,
    workers: tuple[ThreadedServer, ThreadedServer],
    fake_provider: FakeProviderServer,
) -> None:
    """A finished reply stays in the producing worker's memory and in Redis for late
    re-attaches; once its row is deleted neither may serve it (it was replayed in full)."""
    delete = DELETES[kind]
    first, second = workers
    async with (
        httpx.AsyncClient(base_url=first.base_url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.base_url, timeout=30) as b,
    ):
        user = await register_user(a, "gone")
        session_id = await _session(a, user)
        fake_provider.script(Reply(tokens=[" my", " secret", " is", " hunter2"]))
        async with open_chat_stream(
            a, user.headers, read_deltas=1, session_id=session_id, prompt="tell me"
        ) as live:
            message_id = live.message_id
            assert (await live.finish()).final["status"] == "complete"
        for client in (a, b):  # served from A's memory, and from Redis on B
            replay = await client.get(f"/chat/stream/{message_id}", headers=user.headers)
            assert "hunter2" in replay.text
        r = await delete.send(b, user, session_id, message_id)
        assert r.status_code == delete.status, r.text
        for client in (a, b):
            r = await client.get(f"/chat/stream/{message_id}", headers=user.headers)
            assert r.status_code == 404
            assert "hunter2" not in r.text
            r = await client.post(f"/chat/stop/{message_id}", headers=user.headers)
            assert r.status_code == 404


# -- replies made inside their requests (nothing stored), when the account goes ----------------


async def _v1_stream(client: httpx.AsyncClient, user: TestUser) -> list[Any]:
    """A streamed ``/v1`` completion read to its end: its parsed ``data:`` payloads."""
    events: list[Any] = []
    body = {"model": "openai", "messages": [{"role": "user", "content": "go"}], "stream": True}
    async with client.stream(
        "POST", "/v1/chat/completions", json=body, headers=user.headers
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                events.append(DONE if data == DONE else json.loads(data))
    return events


@pytest.fixture(scope="module")
def roomy_workers(
    llm_settings: Settings, redis_url: str
) -> Iterator[tuple[ThreadedServer, ThreadedServer]]:
    """Two workers sharing Redis, with room for several replies per user at once."""
    settings = llm_settings.model_copy(update={"redis_url": redis_url})
    with (
        ThreadedServer(create_app(settings)) as first,
        ThreadedServer(create_app(settings)) as second,
    ):
        yield first, second


@pytest.mark.parametrize("where", ["same worker", "other worker"])
async def test_deleting_the_account_ends_its_replies_made_in_requests(
    where: str,
    roomy_workers: tuple[ThreadedServer, ThreadedServer],
    fake_provider: FakeProviderServer,
) -> None:
    """``/v1`` (streamed and whole) and ``/api/cohere/generate`` keep no rows a delete could
    find: deleting the account ends them all the same, wherever the delete is sent."""
    first, second = roomy_workers
    async with (
        httpx.AsyncClient(base_url=first.base_url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.base_url, timeout=30) as b,
    ):
        deleter = a if where == "same worker" else b
        user = await register_user(a, "stateless")
        # More than the three calls: a stray call of an earlier test cannot leave one of ours
        # an instant echo that finishes before the delete.
        fake_provider.script(*[Reply(tokens=TOKENS, interval_s=0.05)] * 6)
        prompt = [{"role": "user", "content": "go"}]
        streamed = asyncio.create_task(_v1_stream(a, user))
        whole = asyncio.create_task(
            a.post(
                "/v1/chat/completions",
                json={"model": "openai", "messages": prompt},
                headers=user.headers,
            )
        )
        cohere = asyncio.create_task(
            a.post(
                "/api/cohere/generate",
                json={"prompt": "go", "model": "openai"},
                headers=user.headers,
            )
        )
        while fake_provider.generation_count < 3:  # noqa: ASYNC110 - another thread's counter
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        r = await deleter.request("DELETE", "/auth/me", json=ACCOUNT, headers=user.headers)
        assert r.status_code == 204, r.text
        events = await asyncio.wait_for(streamed, 10)
        answers = await asyncio.wait_for(asyncio.gather(whole, cohere), 10)
    # OpenAI's in-stream error says why, then the end marker (after every in-stream error).
    assert events[-2]["error"]["message"] == ACCOUNT_DELETED
    assert events[-1] == DONE
    assert events.count(DONE) == 1
    texts = [e["choices"][0]["delta"].get("content", "") for e in events if "choices" in e]
    assert 0 < len("".join(texts)) < len(FULL_TEXT)
    for answer in answers:
        assert answer.status_code == 404, answer.text
        assert answer.json()["detail"] == ACCOUNT_DELETED


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


@pytest.mark.parametrize("how", ["abandon", "stop"])
async def test_a_reply_interrupted_before_its_task_starts_still_ends(
    container: Container, how: str
) -> None:
    """A delete (or a stop) can reach a reply between the creation of its task and the task's
    first step. A task cancelled then never runs its body: the reply would never end, its
    followers would wait forever and the user's slot would be lost (seen by racing
    ``POST /chat/stream`` against ``DELETE /sessions/{id}``)."""
    generation = container.generation
    async with unit_of_work(container.database.writer) as db:
        user = User(email=unique_email("race"), password_hash="not-a-login")
        db.add(user)
        session = await container.chats.create_session(db, user.id, "race")
    reply, _ = await generation.start_stored_reply(
        user.id, session.id, "hi", generation.registry.default
    )
    assert not reply.started  # nothing has yielded to the loop since the task was made
    if how == "abandon":
        await generation.hub.abandon([reply.message_id], "gone")
    else:
        assert await generation.hub.request_stop(reply.message_id, user.id)
    assert reply.task is not None
    await asyncio.wait_for(asyncio.shield(reply.task), 10)
    assert reply.final is not None
    if how == "abandon":
        assert (reply.final.status, reply.final.error, reply.final.code) == (
            "error",
            "gone",
            "deleted",
        )
    else:
        assert reply.final.status == "stopped"
        stored = await generation.stored_message(user.id, reply.message_id)
        assert stored is not None
        assert stored.status == "stopped"
    # Every one of the user's slots is free again.
    limit = container.settings.max_concurrent_generations
    for _ in range(limit):
        await generation.limiter.acquire(user.id)
    for _ in range(limit):
        await generation.limiter.release(user.id)
