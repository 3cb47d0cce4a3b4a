"""Hybrid retrieval: vector and keyword candidates fused, then an optional reranker. Only chunks of
the caller's ``ready`` documents come back.

Fusion is a convex combination of each side's min-max normalized scores by default (Bruch et al.
2023, "An Analysis of Fusion Functions for Hybrid Retrieval", found it better than reciprocal
rank fusion and robust in its one weight); reciprocal rank fusion is the alternative. The
default weight was chosen on half of the benchmark's queries and checked on the other half
(BENCHMARKS.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.db.engine import Database
from omnichat.documents.models import Chunk, Document, DocumentStatus
from omnichat.rag.embedders.base import Embedder
from omnichat.rag.index import VectorIndex
from omnichat.rag.keyword import keyword_search
from omnichat.rag.types import KeywordHit, VectorHit

# The k of reciprocal rank fusion (Cormack et al. 2009): score = sum of 1 / (k + rank).
RRF_K = 60

Hit = VectorHit | KeywordHit


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: int
    document_id: str
    filename: str
    page: int
    text: str
    score: float


class Reranker(Protocol):
    """Reorders (and may cut) fused candidates, e.g. with a cross-encoder."""

    async def rerank(self, question: str, chunks: list[RetrievedChunk]) -> list[RetrievedChunk]: ...


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = RRF_K
) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return _best_first(scores)


def convex_fusion(weighted: Sequence[tuple[Sequence[Hit], float]]) -> list[tuple[int, float]]:
    """Sum of weight x score, each ranking's scores min-max normalized to [0, 1] (a ranking whose
    scores are all equal counts 1 for each); a chunk missing from a ranking gets 0 there."""
    scores: dict[int, float] = {}
    for hits, weight in weighted:
        if not hits:
            continue
        low = min(hit.score for hit in hits)
        spread = max(hit.score for hit in hits) - low
        for hit in hits:
            normalized = (hit.score - low) / spread if spread > 0 else 1.0
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight * normalized
    return _best_first(scores)


def _best_first(scores: dict[int, float]) -> list[tuple[int, float]]:
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class RetrievalOptions:
    top_k: int
    candidates: int
    mode: str = "hybrid"  # or "vector", "keyword" (benchmarks compare them)
    fusion: str = "convex"  # or "rrf"
    vector_weight: float = 0.6  # convex fusion: the keyword side weighs 1 - this

    def fuse(
        self, vector_hits: Sequence[VectorHit], keyword_hits: Sequence[KeywordHit]
    ) -> list[tuple[int, float]]:
        if self.fusion == "rrf":
            rankings = [[hit.chunk_id for hit in hits] for hits in (vector_hits, keyword_hits)]
            return reciprocal_rank_fusion([ranking for ranking in rankings if ranking])
        return convex_fusion(
            [(vector_hits, self.vector_weight), (keyword_hits, 1.0 - self.vector_weight)]
        )


class Retriever:
    def __init__(
        self,
        database: Database,
        embedder: Embedder,
        index: VectorIndex,
        options: RetrievalOptions,
        reranker: Reranker | None = None,
    ) -> None:
        self._database = database
        self._embedder = embedder
        self._index = index
        self.options = options
        self._reranker = reranker

    async def has_documents(self, user_id: str) -> bool:
        async with self._database.reader() as db:
            return bool(
                await db.scalar(
                    select(
                        exists().where(
                            Document.user_id == user_id,
                            Document.status == DocumentStatus.READY.value,
                        )
                    )
                )
            )

    async def retrieve(
        self, user_id: str, question: str, *, mode: str | None = None
    ) -> list[RetrievedChunk]:
        """Callers that may ask for a user without documents check ``has_documents`` first
        (the grounder does): it spares the query embedding."""
        mode = mode or self.options.mode
        self._index.check_usable()
        vector_hits: list[VectorHit] = []
        keyword_hits: list[KeywordHit] = []
        if mode != "keyword":
            query_vector = await self._embedder.embed_query(question)
        async with self._database.reader() as db:
            if mode != "keyword":
                vector_hits = await self._index.store.search(
                    db, user_id, query_vector, self.options.candidates
                )
            if mode != "vector":
                keyword_hits = await keyword_search(db, user_id, question, self.options.candidates)
            fused = self.options.fuse(vector_hits, keyword_hits)
            keep = self.options.top_k * (3 if self._reranker else 1)
            chunks = await _load(db, user_id, fused, keep)
        if self._reranker is not None:
            chunks = await self._reranker.rerank(question, chunks)
        return chunks[: self.options.top_k]


async def _load(
    db: AsyncSession, user_id: str, fused: list[tuple[int, float]], keep: int
) -> list[RetrievedChunk]:
    """The fused candidates that are the user's and in a ready document, best first. Candidates
    from an external vector store can name chunks since deleted: those drop out here."""
    wanted = fused[: keep * 2]
    if not wanted:
        return []
    rows = await db.execute(
        select(Chunk.id, Chunk.document_id, Document.filename, Chunk.page, Chunk.text)
        .join(Document, Document.id == Chunk.document_id)
        .where(
            Chunk.id.in_([chunk_id for chunk_id, _ in wanted]),
            Chunk.user_id == user_id,
            Document.user_id == user_id,
            Document.status == DocumentStatus.READY.value,
        )
    )
    found = {row.id: row for row in rows}
    chunks = [
        RetrievedChunk(
            chunk_id=chunk_id,
            document_id=found[chunk_id].document_id,
            filename=found[chunk_id].filename,
            page=found[chunk_id].page,
            text=found[chunk_id].text,
            score=score,
        )
        for chunk_id, score in wanted
        if chunk_id in found
    ]
    return chunks[:keep]
