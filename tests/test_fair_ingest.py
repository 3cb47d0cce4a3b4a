"""Document work is shared fairly: another user's small upload and grounded question are served
while one user's large document is still being indexed; deleting a document stops its indexing
at once; and only indexing that really started counts as an attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update

from omnichat.container import Container
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.ingest import MAX_ATTEMPTS
from omnichat.documents.models import Document, DocumentStatus
from tests.conftest import TestUser, make_settings, register_user
from tests.test_document_originals import fresh_url, started_app

__all__ = ["fresh_url"]  # a fixture, imported to be used here

# ~600 chunks of MiniLM word pieces: far more embedding than a small upload or a question.
LARGE = " ".join(
    f"Page {n}. The harbour authority recorded tides, cargo and weather once more."
    for n in range(6000)
).encode()


class CountingEmbedder:
    """The app's embedder, counting the document batches it embeds."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.dimension = inner.name, inner.dimension
        self.batches = 0

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches += 1
        return list(await self.inner.embed_documents(texts))

    async def embed_query(self, text: str) -> list[float]:
        return list(await self.inner.embed_query(text))


class HeldEmbedder(CountingEmbedder):
    """The app's embedder, holding every document batch until released: indexing that has
    started cannot finish before the test "restarts" the server."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.released = asyncio.Event()

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        await self.released.wait()
        return await super().embed_documents(texts)


async def _upload(
    client: httpx.AsyncClient, user: TestUser, data: bytes, name: str, *, background: bool
) -> httpx.Response:
    return await client.post(
        "/upload/document",
        params={"background": "true"} if background else None,
        files={"file": (name, data, "text/plain")},
        headers=user.headers,
    )


async def _status(client: httpx.AsyncClient, user: TestUser, document_id: str) -> str:
    return str(
        (await client.get(f"/documents/{document_id}", headers=user.headers)).json()["status"]
    )


async def test_another_users_work_does_not_wait_behind_a_large_upload(
    client: httpx.AsyncClient, container: Container
) -> None:
    heavy, light = await register_user(client, "heavy"), await register_user(client, "light")
    r = await _upload(client, heavy, LARGE, "large.txt", background=True)
    assert r.status_code == 202, r.text
    large_id = r.json()["id"]
    # The light user's one-paragraph upload is indexed, and answered, in its turn ...
    r = await _upload(
        client, light, b"The lighthouse keeper feeds eleven gulls.", "small.txt", background=False
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    # ... and so is their grounded question: neither waited for the large document.
    r = await client.post(
        "/inference/query",
        json={"query": "How many gulls?", "enable_rag": True},
        headers=light.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["sources"][0]["filename"] == "small.txt"
    assert await _status(client, heavy, large_id) == "processing"
    await client.delete(f"/documents/{large_id}", headers=heavy.headers)


async def test_deleting_a_document_stops_its_indexing_at_once(
    client: httpx.AsyncClient, container: Container
) -> None:
    user = await register_user(client, "stop")
    lanes = container.documents.ingestor._embedding
    counting = CountingEmbedder(lanes.embedder)
    lanes.embedder = counting
    try:
        r = await _upload(client, user, LARGE, "large.txt", background=True)
        document_id = r.json()["id"]
        while counting.batches < 2:  # noqa: ASYNC110 - the lane counts as it goes
            await asyncio.sleep(0.02)
        assert (
            await client.delete(f"/documents/{document_id}", headers=user.headers)
        ).status_code == 204
        stopped_at = counting.batches
        await asyncio.sleep(1.0)
        assert counting.batches <= stopped_at + 1  # at most the batch already running
        assert document_id not in container.documents.ingestor._jobs
    finally:
        lanes.embedder = counting.inner


async def test_only_started_indexing_counts_as_an_attempt(fresh_url: str, tmp_path: Path) -> None:
    """Documents that wait their turn through restarts are not failed as "interrupted too many
    times" without ever being tried: an attempt counts when indexing starts."""
    async for container, client in started_app(make_settings(fresh_url, tmp_path / "data")):
        user = await register_user(client, "queued")
        ingestor = container.documents.ingestor
        ids = []
        for number in range(3):
            r = await _upload(
                client, user, f"Queued note {number}.".encode(), f"q{number}.txt", background=False
            )
            assert r.status_code == 200, r.text
            ids.append(r.json()["id"])
        async with unit_of_work(container.database.writer) as db:
            await db.execute(
                update(Document)
                .where(Document.id.in_(ids))
                .values(status=DocumentStatus.PROCESSING.value, attempts=0)
            )
        # One document of the user's is indexed at a time: the first starts, the others wait.
        # "Restart" each time the first has started, MAX_ATTEMPTS times. The held embedder keeps
        # the first from finishing (a tiny note is otherwise indexed before the restart).
        lanes = ingestor._embedding
        held = HeldEmbedder(lanes.embedder)
        lanes.embedder = held
        try:
            for round_number in range(1, MAX_ATTEMPTS + 1):
                assert await ingestor.resume() == 3
                while (await _attempts(container, ids))[0] < round_number:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                await ingestor.shutdown()
                assert (await _attempts(container, ids))[1:] == [0, 0]  # never started
        finally:
            lanes.embedder = held.inner
        assert held.batches == 0
        assert await ingestor.resume() == 3
        states = {}
        for document_id in ids:
            for _ in range(400):
                state = (await client.get(f"/documents/{document_id}", headers=user.headers)).json()
                if state["status"] != "processing":
                    break
                await asyncio.sleep(0.05)
            states[document_id] = state
        first, *others = (states[i] for i in ids)
        assert first["status"] == "failed"  # its next start was one too many
        assert first["error"] == "Indexing was interrupted too many times"
        assert [state["status"] for state in others] == ["ready", "ready"]


async def _attempts(container: Container, ids: list[str]) -> list[int]:
    async with container.database.reader() as db:
        rows = dict(
            (
                await db.execute(select(Document.id, Document.attempts).where(Document.id.in_(ids)))
            ).all()
        )
    return [rows[i] for i in ids]
