"""The Pinecone vector store through the official SDK, against the fake Pinecone on loopback."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from omnichat.rag.types import VectorRecord
from omnichat.rag.vectors.pinecone import PineconeVectorStore, VectorStoreUnavailable
from omnichat.settings import Settings
from tests.fakes.pinecone_fake import PineconeFake

API_KEY = "pcsk_test_0123456789"
DIM = 8
# The session argument: Pinecone ignores it.
NO_SESSION: Any = None


def unit(seed: int, dim: int = DIM) -> list[float]:
    rng = random.Random(seed)
    vector = [rng.gauss(0, 1) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def records(chunk_ids: range, document_id: str = "doc-1") -> list[VectorRecord]:
    return [VectorRecord(chunk_id=i, document_id=document_id, vector=unit(i)) for i in chunk_ids]


@pytest.fixture
def fake() -> Iterator[PineconeFake]:
    with PineconeFake(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def store(fake: PineconeFake) -> AsyncIterator[PineconeVectorStore]:
    store = PineconeVectorStore(api_key=API_KEY, index_name="omnichat", controller_host=fake.url)
    await store.prepare(DIM)
    yield store
    await store.close()


async def test_prepare_creates_the_index_once(fake: PineconeFake) -> None:
    store = PineconeVectorStore(api_key=API_KEY, index_name="omnichat", controller_host=fake.url)
    await store.prepare(DIM)
    await store.prepare(DIM)  # idempotent
    assert (fake.index_name, fake.dimension) == ("omnichat", DIM)
    assert [r[:2] for r in fake.requests].count(("POST", "/indexes")) == 1
    with pytest.raises(ValueError, match="8-dimensional vectors"):
        await store.prepare(16)
    await store.close()


async def test_upsert_search_delete(store: PineconeVectorStore, fake: PineconeFake) -> None:
    await store.upsert(NO_SESSION, "alice", records(range(1, 21)))
    hits = await store.search(NO_SESSION, "alice", unit(7), limit=5)
    assert len(hits) == 5
    assert hits[0].chunk_id == 7
    assert math.isclose(hits[0].score, 1.0, abs_tol=1e-6)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert fake.namespaces["alice"]["7"][1] == {"document_id": "doc-1"}
    # Upsert again overwrites: same ids, new vectors.
    await store.upsert(NO_SESSION, "alice", [VectorRecord(7, "doc-1", unit(999))])
    assert (await store.search(NO_SESSION, "alice", unit(999), limit=1))[0].chunk_id == 7
    await store.delete(NO_SESSION, "alice", [7, 8, 12345])  # a missing id is ignored
    remaining = await store.search(NO_SESSION, "alice", unit(7), limit=50)
    assert sorted(h.chunk_id for h in remaining) == [i for i in range(1, 21) if i not in (7, 8)]


async def test_namespaces_keep_users_apart(store: PineconeVectorStore, fake: PineconeFake) -> None:
    await store.upsert(NO_SESSION, "alice", records(range(1, 6), "alice-doc"))
    await store.upsert(NO_SESSION, "bob", records(range(100, 103), "bob-doc"))
    # Bob searching with Alice's exact vector still only finds his own chunks.
    bob_hits = await store.search(NO_SESSION, "bob", unit(3), limit=10)
    assert sorted(h.chunk_id for h in bob_hits) == [100, 101, 102]
    assert await store.search(NO_SESSION, "carol", unit(3), limit=10) == []
    # Deleting "Alice's" chunk ids as Bob touches nothing of hers.
    await store.delete(NO_SESSION, "bob", [1, 2, 3])
    await store.delete(NO_SESSION, "carol", [1, 2, 3])  # no namespace at all: not an error
    assert len(await store.search(NO_SESSION, "alice", unit(3), limit=10)) == 5
    queried = {ns for method, path, ns in fake.requests if path == "/query"}
    assert queried == {"alice", "bob", "carol"}
    with pytest.raises(ValueError, match="user id"):
        await store.search(NO_SESSION, "", unit(3), limit=1)


async def test_reset_recreates_the_index(store: PineconeVectorStore, fake: PineconeFake) -> None:
    await store.upsert(NO_SESSION, "alice", records(range(1, 4)))
    await store.reset(16)
    assert fake.dimension == 16
    assert await store.search(NO_SESSION, "alice", unit(1, 16), limit=5) == []
    await store.upsert(NO_SESSION, "alice", [VectorRecord(1, "d", unit(1, 16))])
    assert [h.chunk_id for h in await store.search(NO_SESSION, "alice", unit(1, 16), 5)] == [1]


async def test_a_fixed_host_uses_the_data_plane_only() -> None:
    with PineconeFake(api_key=API_KEY, index_name="given", dimension=DIM) as fake:
        settings = Settings(
            pinecone_api_key=API_KEY, pinecone_index="given", pinecone_host=fake.url
        )
        store = PineconeVectorStore.from_settings(settings)
        await store.prepare(DIM)
        await store.upsert(NO_SESSION, "alice", records(range(1, 4)))
        assert [h.chunk_id for h in await store.search(NO_SESSION, "alice", unit(2), 1)] == [2]
        with pytest.raises(ValueError, match="8-dimensional"):
            await store.prepare(384)
        await store.reset(DIM)  # empties every namespace; the index stays
        assert await store.search(NO_SESSION, "alice", unit(2), 1) == []
        await store.close()
        assert not any(path.startswith("/indexes") for _, path, _ in fake.requests)


async def test_requests_without_the_key_are_refused(fake: PineconeFake) -> None:
    fake.index_name, fake.dimension = "omnichat", DIM
    store = PineconeVectorStore(api_key="pcsk_wrong_key_0123456789", index_name="x", host=fake.url)
    # The server's own key is wrong: a 503 naming the vector store and the status, no key.
    with pytest.raises(VectorStoreUnavailable, match="401") as refused:
        await store.search(NO_SESSION, "alice", unit(1), limit=1)
    assert "pcsk_wrong_key" not in str(refused.value)
    await store.close()
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake.url}/query", json={"topK": 1, "vector": unit(1)})
    assert response.status_code == 401


def test_settings_without_a_key_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OMNICHAT_PINECONE_API_KEY"):
        PineconeVectorStore.from_settings(Settings())
