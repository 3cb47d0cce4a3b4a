"""BEIR SciFact (test split) through the real pipeline, for one embedder at a time.

Every corpus document (``title``, a blank line, ``text``, as BEIR joins them) is uploaded as a
``.txt`` with ``DocumentService.upload`` (sandboxed extraction, chunker, the embedder under test,
sqlite-vec + FTS5), and every test query goes through ``Retriever.retrieve`` in each mode. A
document ranks by its best chunk; nDCG@10 is BEIR's (pytrec_eval's) over the 300 test queries
and their graded qrels.

The data is read from ``../shared/data/scifact/`` beside the checkout (or ``--scifact DIR``),
never copied into the repository (CC BY-NC; see that folder's README). Without it the part is
skipped with a message saying where it looked.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from omnichat.db.unit_of_work import unit_of_work
from omnichat.rag.retrieval import RetrievalOptions, Retriever
from omnichat.rag.types import VectorRecord

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
SCIFACT_MODES = ("vector", "keyword", "hybrid")
FILES = ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")


@dataclass(frozen=True)
class SciFact:
    corpus: dict[str, str]  # doc id -> title, blank line, text
    queries: dict[str, str]  # query id -> text, only those with test qrels
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> grade


@dataclass
class SciFactResult:
    embedder: str
    documents: int
    chunks: int
    queries: int
    ingest_s: float
    ndcg: dict[str, float]  # mode -> nDCG@10, in points (0-100)


def missing_files(folder: Path) -> list[str]:
    return [name for name in FILES if not (folder / name).is_file()]


def load_scifact(folder: Path, max_documents: int | None = None) -> SciFact:
    """The test split. ``max_documents`` keeps every judged document and fills up with the
    others in corpus order (a quick, optimistic subset)."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (folder / "qrels" / "test.tsv").open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels[row["query-id"]][row["corpus-id"]] = int(row["score"])
    judged = {doc for grades in qrels.values() for doc in grades}
    corpus: dict[str, str] = {}
    with (folder / "corpus.jsonl").open() as handle:
        for line in handle:
            record = json.loads(line)
            corpus[record["_id"]] = f"{record['title']}\n\n{record['text']}".strip()
    if max_documents is not None:
        kept = [doc for doc in corpus if doc in judged]
        kept += [doc for doc in corpus if doc not in judged][: max(0, max_documents - len(kept))]
        corpus = {doc: corpus[doc] for doc in kept}
    queries: dict[str, str] = {}
    with (folder / "queries.jsonl").open() as handle:
        for line in handle:
            record = json.loads(line)
            if record["_id"] in qrels:
                queries[record["_id"]] = record["text"]
    return SciFact(corpus, queries, dict(qrels))


async def bench_scifact(folder: Path, data: SciFact, embedder: str) -> SciFactResult:
    """Upload the corpus into a new data dir at ``folder``, then evaluate it."""
    from benchmarks.rag_bench import add_user, make_settings, start_container, stop_container

    container = await start_container(make_settings(folder, embedder=embedder))
    try:
        user_id = await add_user(container, "scifact")
        await container.vector_index.embedder.warm_up()  # type: ignore[attr-defined]
        slots = asyncio.Semaphore(8)

        async def upload(doc_id: str, body: str) -> None:
            async with slots:
                source = io.BytesIO(body.encode())
                _, task = await container.documents.upload(user_id, source, f"{doc_id}.txt", None)
                error = await task
                if error is not None:
                    raise RuntimeError(f"SciFact {doc_id}: {error.detail}")

        started = time.perf_counter()
        await asyncio.gather(*(upload(doc, body) for doc, body in data.corpus.items()))
        ingest_s = time.perf_counter() - started
    finally:
        await stop_container(container)
    return await evaluate_scifact(folder, data, embedder, ingest_s)


async def reembed_scifact(
    source: Path, folder: Path, data: SciFact, embedder: str
) -> SciFactResult:
    """The same chunks as the data dir at ``source`` (which ``bench_scifact`` filled with
    another embedder), copied to ``folder`` and embedded again by ``embedder``: what
    ``omnichat reindex`` does, without parsing the originals again. Then evaluated."""
    from benchmarks.rag_bench import make_settings, start_container, stop_container

    shutil.copytree(source, folder)
    settings = make_settings(folder, embedder=embedder)
    container = await start_container(settings)
    index = container.vector_index
    try:
        async with container.database.reader() as db:
            rows = (
                await db.execute(
                    text(
                        "SELECT c.id, c.document_id, d.user_id, c.text FROM chunks c "
                        "JOIN documents d ON d.id = c.document_id"
                    )
                )
            ).all()
        started = time.perf_counter()
        vectors = await index.embedder.embed_documents([row[3] for row in rows])
        embed_s = time.perf_counter() - started
        await index.store.reset(index.embedder.dimension)
        async with unit_of_work(container.database.writer) as db:
            await index.store.upsert(
                db,
                str(rows[0][2]),
                [
                    VectorRecord(int(row[0]), str(row[1]), vector)
                    for row, vector in zip(rows, vectors, strict=True)
                ],
            )
        await index.record_rebuilt()
    finally:
        await stop_container(container)
    return await evaluate_scifact(folder, data, embedder, embed_s)


async def evaluate_scifact(
    folder: Path, data: SciFact, embedder: str, ingest_s: float = float("nan")
) -> SciFactResult:
    """nDCG@10 of every mode over the test queries, on the data dir at ``folder`` that
    ``bench_scifact`` filled (a document's file name is its corpus id)."""
    from benchmarks.rag_bench import (
        CANDIDATES,
        make_settings,
        ndcg_at_k,
        start_container,
        stop_container,
        top_documents,
    )

    container = await start_container(make_settings(folder, embedder=embedder))
    try:
        async with container.database.reader() as db:
            rows = await db.execute(text("SELECT id, user_id, filename FROM documents"))
            corpus_id = {str(id_): name.removesuffix(".txt") for id_, _, name in rows}
            user_id = str(await db.scalar(text("SELECT id FROM users")))
            chunks = int(await db.scalar(text("SELECT count(*) FROM chunks")) or 0)
        retriever = Retriever(
            container.database,
            container.vector_index.embedder,
            container.vector_index,
            RetrievalOptions(top_k=CANDIDATES, candidates=CANDIDATES),
        )
        scores: dict[str, list[float]] = {mode: [] for mode in SCIFACT_MODES}
        for query_id, query in data.queries.items():
            for mode in SCIFACT_MODES:
                retrieved = await retriever.retrieve(user_id, query, mode=mode)
                ranked = top_documents(corpus_id[chunk.document_id] for chunk in retrieved)
                scores[mode].append(ndcg_at_k(ranked, data.qrels[query_id]))
        return SciFactResult(
            embedder=embedder,
            documents=len(corpus_id),
            chunks=chunks,
            queries=len(data.queries),
            ingest_s=ingest_s,
            ndcg={mode: 100 * statistics.fmean(values) for mode, values in scores.items()},
        )
    finally:
        await stop_container(container)


def print_scifact(results: list[SciFactResult]) -> None:
    if not results:
        return
    first = results[0]
    print(
        f"\n## BEIR SciFact test split: {first.documents} documents, {first.queries} queries, "
        "nDCG@10 (points)\n"
    )
    print("| embedder | chunks | ingest s | vector | keyword | hybrid |")
    print("|---|---:|---:|---:|---:|---:|")
    for result in results:
        ndcg = result.ndcg
        print(
            f"| `{result.embedder}` | {result.chunks} | {result.ingest_s:.0f} | "
            f"{ndcg['vector']:.1f} | {ndcg['keyword']:.1f} | {ndcg['hybrid']:.1f} |"
        )
