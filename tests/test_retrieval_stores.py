"""Vector stores (sqlite-vec, pgvector), keyword search and rank fusion on the real databases.

The owner filter is part of each query: another user's chunks never come back, even with an
identical vector or the very same rare word."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, text
from sqlalchemy.engine import Connection

from omnichat.container import Container
from omnichat.db.migrate import alembic_config
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.models import Chunk, Document, DocumentStatus
from omnichat.rag.keyword import keyword_search, owner_token, query_terms
from omnichat.rag.retrieval import RetrievalOptions, convex_fusion, reciprocal_rank_fusion
from omnichat.rag.types import KeywordHit, VectorHit, VectorRecord
from omnichat.rag.vectors.base import VectorStore
from omnichat.rag.vectors.factory import build_vector_store
from tests.conftest import TestUser, UserFactory

DIM = 384


def basis(*weights: float) -> list[float]:
    vector = [0.0] * DIM
    for position, weight in enumerate(weights):
        vector[position] = weight
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


@pytest.fixture
async def store(container: Container) -> VectorStore:
    built = build_vector_store(container.settings, container.database)
    await built.prepare(DIM)
    return built


async def add_document(
    container: Container,
    store: VectorStore,
    user: TestUser,
    passages: Sequence[tuple[str, list[float]]],
    status: DocumentStatus = DocumentStatus.READY,
) -> list[int]:
    document = Document(
        user_id=user.id,
        filename="notes.txt",
        kind="txt",
        size_bytes=1,
        sha256="0" * 64,
        blob_key="documents/test",
        status=status.value,
        pages=1,
        chunk_count=len(passages),
        attempts=1,
    )
    async with unit_of_work(container.database.writer) as db:
        db.add(document)
        await db.flush()
        ids = list(
            (
                await db.scalars(
                    insert(Chunk).returning(Chunk.id, sort_by_parameter_order=True),
                    [
                        {
                            "document_id": document.id,
                            "user_id": user.id,
                            "ordinal": n,
                            "page": 1,
                            "text": passage,
                            "token_count": 5,
                        }
                        for n, (passage, _) in enumerate(passages)
                    ],
                )
            ).all()
        )
        await store.upsert(
            db,
            user.id,
            [
                VectorRecord(chunk_id, document.id, vector)
                for chunk_id, (_, vector) in zip(ids, passages, strict=True)
            ],
        )
    return ids


async def test_vector_search_returns_only_the_callers_vectors(
    container: Container, store: VectorStore, make_user: UserFactory
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    [alice_chunk] = await add_document(container, store, alice, [("alpha", basis(1))])
    [bob_chunk] = await add_document(container, store, bob, [("alpha too", basis(1))])
    async with container.database.reader() as db:
        alice_hits = await store.search(db, alice.id, basis(1), 10)
        bob_hits = await store.search(db, bob.id, basis(1), 10)
    assert [hit.chunk_id for hit in alice_hits] == [alice_chunk]
    assert [hit.chunk_id for hit in bob_hits] == [bob_chunk]
    assert alice_hits[0].score == pytest.approx(1.0, abs=1e-5)


async def test_vector_search_orders_by_cosine_similarity(
    container: Container, store: VectorStore, make_user: UserFactory
) -> None:
    user = await make_user()
    near, middle, far = await add_document(
        container,
        store,
        user,
        [("near", basis(1, 0.1)), ("middle", basis(1, 1)), ("far", basis(0, 1))],
    )
    async with container.database.reader() as db:
        hits = await store.search(db, user.id, basis(1), 3)
        top_one = await store.search(db, user.id, basis(1), 1)
    assert [hit.chunk_id for hit in hits] == [near, middle, far]
    assert hits[0].score > hits[1].score > hits[2].score
    assert hits[1].score == pytest.approx(1 / math.sqrt(2), abs=1e-4)
    assert [hit.chunk_id for hit in top_one] == [near]


async def test_deleted_vectors_are_not_found_and_others_stay(
    container: Container, store: VectorStore, make_user: UserFactory
) -> None:
    user, other = await make_user(), await make_user("other")
    first, second = await add_document(
        container, store, user, [("one", basis(1)), ("two", basis(0, 1))]
    )
    [others] = await add_document(container, store, other, [("one", basis(1))])
    async with unit_of_work(container.database.writer) as db:
        # Another user's id in the list is ignored: deletes are scoped too.
        await store.delete(db, user.id, [first, others])
    async with container.database.reader() as db:
        mine = await store.search(db, user.id, basis(1), 10)
        theirs = await store.search(db, other.id, basis(1), 10)
    assert [hit.chunk_id for hit in mine] == [second]
    assert [hit.chunk_id for hit in theirs] == [others]


async def test_upsert_replaces_a_chunks_vector(
    container: Container, store: VectorStore, make_user: UserFactory
) -> None:
    user = await make_user()
    [chunk] = await add_document(container, store, user, [("x", basis(1))])
    async with unit_of_work(container.database.writer) as db:
        await store.upsert(db, user.id, [VectorRecord(chunk, "doc", basis(0, 0, 1))])
    async with container.database.reader() as db:
        [hit] = await store.search(db, user.id, basis(0, 0, 1), 5)
    assert hit.chunk_id == chunk
    assert hit.score == pytest.approx(1.0, abs=1e-5)


async def test_keyword_search_is_scoped_to_owner_and_ready_documents(
    container: Container, store: VectorStore, make_user: UserFactory
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    [alice_chunk] = await add_document(
        container, store, alice, [("The zorblax reactor runs on tea.", basis(1))]
    )
    await add_document(
        container,
        store,
        bob,
        [("Bob's zorblax notes are still being indexed.", basis(1))],
        status=DocumentStatus.PROCESSING,
    )
    async with container.database.reader() as db:
        [hit] = await keyword_search(db, alice.id, "what fuels the zorblax?", 10)
        assert hit.chunk_id == alice_chunk
        assert await keyword_search(db, bob.id, "zorblax", 10) == []
        # Naming another user's index partition in the question matches nothing of theirs.
        assert await keyword_search(db, bob.id, f"zorblax {owner_token(alice.id)}", 10) == []


async def test_keyword_search_ranks_and_stems(
    container: Container, store: VectorStore, make_user: UserFactory
) -> None:
    user = await make_user()
    both, one, none = await add_document(
        container,
        store,
        user,
        [
            ("Quantum ferrets were observed jumping.", basis(1)),
            ("A ferret sleeps all day.", basis(1)),
            ("Nothing relevant here at all.", basis(1)),
        ],
    )
    async with container.database.reader() as db:
        hits = await keyword_search(db, user.id, "quantum ferret jumps", 10)
    ranked = [hit.chunk_id for hit in hits]
    assert ranked[:2] == [both, one]
    assert none not in ranked
    assert hits[0].score > hits[1].score


@pytest.mark.parametrize(
    "question",
    ['"unbalanced', "NEAR(a b)", "a* OR -b", "col:val", "'; DROP TABLE chunks; --", "^ & | !"],
)
async def test_keyword_search_treats_query_syntax_as_words(
    container: Container, store: VectorStore, make_user: UserFactory, question: str
) -> None:
    user = await make_user()
    await add_document(container, store, user, [("table near the val column", basis(1))])
    async with container.database.reader() as db:
        await keyword_search(db, user.id, question, 10)  # no syntax error
        count = await db.scalar(text("SELECT count(*) FROM chunks"))
    assert count is not None
    assert count > 0


def test_query_terms_are_distinct_words_only() -> None:
    assert query_terms('What is "RAG"? RAG, rag!') == ["what", "is", "rag"]
    assert query_terms("***") == []
    assert len(query_terms(" ".join(f"w{n}" for n in range(100)))) == 32


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]])
    order = [chunk_id for chunk_id, _ in fused]
    assert order[:2] == [1, 3]  # 1: ranks 1 and 2; 3: ranks 3 and 1
    assert set(order) == {1, 2, 3, 4}
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[4] == pytest.approx(1 / 63)
    assert reciprocal_rank_fusion([]) == []


def test_convex_fusion_weighs_normalized_scores() -> None:
    vector = [VectorHit(1, 0.9), VectorHit(2, 0.7), VectorHit(3, 0.5)]
    keyword = [KeywordHit(3, 12.0), KeywordHit(4, 2.0)]
    fused = dict(convex_fusion([(vector, 0.6), (keyword, 0.4)]))
    # vector normalized: 1 -> 1.0, 2 -> 0.5, 3 -> 0.0; keyword: 3 -> 1.0, 4 -> 0.0
    assert fused == pytest.approx({1: 0.6, 2: 0.3, 3: 0.4, 4: 0.0})
    assert [chunk for chunk, _ in convex_fusion([(vector, 0.6), (keyword, 0.4)])] == [1, 3, 2, 4]
    # One hit (or equal scores) counts fully rather than as the bottom of its range.
    assert dict(convex_fusion([([KeywordHit(7, 3.0)], 0.4)])) == {7: pytest.approx(0.4)}
    assert convex_fusion([([], 0.6), ([], 0.4)]) == []


@pytest.mark.parametrize(("fusion", "first"), [("convex", 2), ("rrf", 1)])
def test_retrieval_options_choose_the_fusion(fusion: str, first: int) -> None:
    # Vector barely prefers 1; keyword strongly prefers 2: only score fusion sees the margins.
    vector = [VectorHit(1, 0.81), VectorHit(2, 0.80), VectorHit(3, 0.1)]
    keyword = [KeywordHit(2, 9.0), KeywordHit(1, 1.0), KeywordHit(3, 0.5)]
    options = RetrievalOptions(top_k=3, candidates=3, fusion=fusion)
    assert options.fuse(vector, keyword)[0][0] == first


async def test_keyword_index_survives_migration_down_and_up(
    container: Container, store: VectorStore, make_user: UserFactory
) -> None:
    """0004 rebuilds the keyword index from the chunks already stored, both ways."""
    user = await make_user()
    [chunk] = await add_document(
        container, store, user, [("The quuxotron hums at night.", basis(1))]
    )
    engine = container.database.writer_engine or container.database.engine

    async def migrate(step: Callable[[Config, str], None], revision: str) -> None:
        def run(connection: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            step(config, revision)

        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()

    await migrate(command.downgrade, "0003")
    async with container.database.reader() as db:
        if container.settings.is_sqlite:  # 0003's index: text only
            found = await db.execute(
                text("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH 'quuxotron'")
            )
            assert [row for (row,) in found] == [chunk]
        else:  # 0004 leaves PostgreSQL's index as it is
            assert [hit.chunk_id for hit in await keyword_search(db, user.id, "quuxotron", 1)] == [
                chunk
            ]
    await migrate(command.upgrade, "head")
    async with container.database.reader() as db:
        [hit] = await keyword_search(db, user.id, "quuxotron", 10)
    assert hit.chunk_id == chunk
