"""Documents and RAG: retrieval quality, ingest speed and query latency, in one run.

1. Retrieval quality (nDCG@10 and recall@10 of vector-only, keyword-only and hybrid RRF) through
   the real pipeline: every document is uploaded with ``DocumentService.upload`` (sniffing, text
   extraction, the blob store, the ``Chunker``, the local all-MiniLM-L6-v2 embedder and
   sqlite-vec + FTS5 on SQLite) and every query goes through ``Retriever.retrieve``. Top 10
   distinct documents: 100 candidates per side, chunks deduplicated by document (a document
   scores by its best chunk).

   The data set is NOT BEIR SciFact: it could not be downloaded from the machine this was
   written on (see BENCHMARKS.md). It is a known-item set built at run time, offline, from the
   docstrings of CPython's standard library: for every function, class or method whose docstring
   has a summary paragraph and a body, the document is its qualified name plus the body, and the
   summary paragraph (removed from the document) is a query whose one relevant document is that
   one. Figures on it are not comparable to published BEIR figures.

2. Ingest speed: PDF text extraction (a multi-page fpdf2 PDF through the real ``Extractor`` and
   its worker processes), chunking (``Chunker``) and embedding (``LocalMiniLMEmbedder``, batch
   32) on this CPU; and the query embedding alone.

3. Query latency of ``Retriever.retrieve`` (hybrid, vector-only, keyword-only) and of the raw
   ``store.search`` on SQLite/sqlite-vec, then on PostgreSQL/pgvector (a pgserver instance;
   ``--no-postgres`` skips it), with synthetic chunks inserted directly (random unit vectors;
   text drawn from the corpus's words for the keyword index): one user with 10k chunks, then one
   with 99k of 100k and one with 1k of 100k. The query vector is fixed so that these times leave
   the query embedding out (measured separately in 2).

1. also sweeps convex fusion's weight, on every query, from one vector and one keyword search
   per query fused with the app's ``convex_fusion``; the full run uses every document's query.

    .venv/bin/python -m benchmarks.rag_bench [--quick] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import inspect
import io
import math
import pkgutil
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fpdf import FPDF
from sqlalchemy import insert, text

from benchmarks.embedder_bench import (
    SPECS,
    MemoryRow,
    SpeedRow,
    bench_memory,
    bench_speed,
    print_embedders,
)
from benchmarks.scifact_bench import (
    DEFAULT_DIR,
    SciFactResult,
    bench_scifact,
    load_scifact,
    missing_files,
    print_scifact,
)
from omnichat.auth.models import User
from omnichat.cli import migrate
from omnichat.container import Container, build_container
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.models import Chunk, Document, DocumentStatus
from omnichat.rag.chunking import Chunker
from omnichat.rag.embedders.factory import build_embedder
from omnichat.rag.keyword import keyword_search
from omnichat.rag.retrieval import RetrievalOptions, Retriever, convex_fusion
from omnichat.rag.types import VectorRecord
from omnichat.settings import Settings

SECRET = "rag-benchmark-secret-key-0123456789abcdefghijklmnop"
# label -> (retrieval mode, fusion)
MODES = {
    "vector": ("vector", "convex"),
    "keyword": ("keyword", "convex"),
    "hybrid, convex (default)": ("hybrid", "convex"),
    "hybrid, RRF k=60": ("hybrid", "rrf"),
}
TOP_K = 10
CANDIDATES = 100
SEED = 20261124
SWEEP_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Standard-library modules left out: side effects on import, platform-only, or test suites.
SKIP_MODULES = {
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "test",
    "lib2to3",
    "ensurepip",
    "pydoc_data",
    "venv",
    "msvcrt",
    "winreg",
    "winsound",
    "nt",
}


# -- the data set --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    doc_id: str  # the qualified name
    query: str  # the docstring's summary paragraph
    text: str  # the qualified name and the rest of the docstring


def _stdlib_modules() -> list[str]:
    names: list[str] = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP_MODULES:
            continue
        names.append(name)
        try:
            package = importlib.import_module(name)
        except Exception:  # noqa: S112 - platform-only modules
            continue
        if hasattr(package, "__path__"):
            for info in pkgutil.walk_packages(package.__path__, name + "."):
                if ".test" in info.name or "._" in info.name:
                    continue
                names.append(info.name)
    return names


def build_docstring_set() -> list[Item]:
    """Deterministic for a given CPython build (the benchmark was run on 3.11.7)."""
    warnings.simplefilter("ignore")
    seen: set[str] = set()
    items: list[Item] = []
    for name in _stdlib_modules():
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: S112 - platform-only modules
            continue
        objects: list[tuple[str, Any]] = [(name, module)]
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
                objects.append((f"{name}.{attr}", obj))
                if inspect.isclass(obj):
                    for member, value in sorted(vars(obj).items()):
                        if not member.startswith("_") and (
                            inspect.isfunction(value) or inspect.ismethoddescriptor(value)
                        ):
                            objects.append((f"{name}.{attr}.{member}", value))
        for qualname, obj in objects:
            doc = getattr(obj, "__doc__", None)
            if not isinstance(doc, str) or not doc.strip():
                continue
            parts = inspect.cleandoc(doc).split("\n\n", 1)
            if len(parts) < 2:
                continue
            summary, body = " ".join(parts[0].split()), parts[1].strip()
            if len(summary.split()) < 5 or len(body.split()) < 25:
                continue
            head = summary.split("(")[0].strip()
            if head.isidentifier() and summary.endswith(")"):
                continue  # a signature line, not a summary
            digest = hashlib.sha1(body.encode()).hexdigest()  # noqa: S324 - dedup only
            if digest in seen:
                continue
            seen.add(digest)
            items.append(Item(qualname, summary, f"{qualname}\n\n{body}"))
    return items


# -- metrics -------------------------------------------------------------------------------------


def ndcg_at_k(ranked: Sequence[str], qrels: dict[str, int], k: int = TOP_K) -> float:
    """BEIR's (pytrec_eval's) nDCG@k: gain = relevance grade, discount log2(rank + 1)."""
    dcg = sum(
        qrels.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1)
    )
    ideal = sorted(qrels.values(), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 1) for rank, grade in enumerate(ideal, start=1))
    return dcg / idcg if idcg else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def latency_row(values_s: Sequence[float]) -> tuple[float, float, float]:
    ms = [value * 1000 for value in values_s]
    return statistics.median(ms), percentile(ms, 99), statistics.fmean(ms)


# -- the app -------------------------------------------------------------------------------------


def make_settings(folder: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": folder,
        "database_url": f"sqlite+aiosqlite:///{folder / 'omnichat.db'}",
        "secret_key": SECRET,
        "access_log": False,
        "embedder": "local",
        "max_documents_per_user": 1_000_000,
    }
    values.update(overrides)
    return Settings(**values)


async def start_container(settings: Settings) -> Container:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await migrate(settings)
    container = build_container(settings)
    await container.vector_index.start()
    return container


async def stop_container(container: Container) -> None:
    container.documents.ingestor.extractor.close()
    await container.vector_index.embedder.aclose()  # type: ignore[attr-defined]
    await container.database.dispose()


async def add_user(container: Container, name: str) -> str:
    user = User(email=f"{name}@bench.example", password_hash="not-a-hash")
    async with unit_of_work(container.database.writer) as db:
        db.add(user)
    return user.id


# -- 1. retrieval quality ------------------------------------------------------------------------


@dataclass
class QualityResult:
    documents: int
    chunks: int
    queries: int
    ingest_s: float
    ndcg: dict[str, float]
    recall: dict[str, float]
    # nDCG@10 on the even- and odd-numbered queries: the fusion weight was chosen on the even
    # half (with an offline sweep), so the odd half is its held-out check.
    ndcg_halves: dict[str, tuple[float, float]]
    # convex fusion's vector weight -> nDCG@10 (even half, odd half), from one vector and one
    # keyword search per query fused with the app's convex_fusion
    weight_sweep: dict[float, tuple[float, float]]


async def bench_quality(folder: Path, items: list[Item], queries: list[Item]) -> QualityResult:
    container = await start_container(make_settings(folder))
    try:
        user_id = await add_user(container, "quality")
        await container.vector_index.embedder.warm_up()  # type: ignore[attr-defined]
        by_document: dict[str, str] = {}
        slots = asyncio.Semaphore(8)

        async def upload(item: Item) -> None:
            async with slots:
                filename = item.doc_id + ".txt"
                source = io.BytesIO(item.text.encode())
                document, task = await container.documents.upload(user_id, source, filename, None)
                error = await task
                if error is not None:
                    raise RuntimeError(f"{item.doc_id}: {error.detail}")
                by_document[document.id] = item.doc_id

        started = time.perf_counter()
        await asyncio.gather(*(upload(item) for item in items))
        ingest_s = time.perf_counter() - started
        async with container.database.reader() as db:
            chunks = int(await db.scalar(text("SELECT count(*) FROM chunks")) or 0)

        retrievers = {
            fusion: Retriever(
                container.database,
                container.vector_index.embedder,
                container.vector_index,
                RetrievalOptions(top_k=CANDIDATES, candidates=CANDIDATES, fusion=fusion),
            )
            for fusion in ("convex", "rrf")
        }
        ndcg: dict[str, list[float]] = {label: [] for label in MODES}
        recall: dict[str, list[float]] = {label: [] for label in MODES}
        for query in queries:
            qrels = {query.doc_id: 1}
            for label, (mode, fusion) in MODES.items():
                retrieved = await retrievers[fusion].retrieve(user_id, query.query, mode=mode)
                ranked = top_documents(by_document[chunk.document_id] for chunk in retrieved)
                ndcg[label].append(ndcg_at_k(ranked, qrels))
                hits = sum(1 for doc in ranked if doc in qrels)
                recall[label].append(hits / len(qrels))
        weight_sweep = await sweep_weights(container, user_id, queries, by_document)
        return QualityResult(
            documents=len(items),
            chunks=chunks,
            queries=len(queries),
            ingest_s=ingest_s,
            ndcg={label: 100 * statistics.fmean(ndcg[label]) for label in MODES},
            recall={label: 100 * statistics.fmean(recall[label]) for label in MODES},
            ndcg_halves={
                label: (
                    100 * statistics.fmean(ndcg[label][0::2]),
                    100 * statistics.fmean(ndcg[label][1::2]),
                )
                for label in MODES
            },
            weight_sweep=weight_sweep,
        )
    finally:
        await stop_container(container)


def top_documents(documents_best_first: Iterable[str]) -> list[str]:
    """The first TOP_K distinct documents (a document ranks by its best chunk)."""
    ranked: list[str] = []
    for doc in documents_best_first:
        if doc not in ranked:
            ranked.append(doc)
            if len(ranked) == TOP_K:
                break
    return ranked


async def sweep_weights(
    container: Container, user_id: str, queries: list[Item], by_document: dict[str, str]
) -> dict[float, tuple[float, float]]:
    embedder = container.vector_index.embedder
    async with container.database.reader() as db:
        rows = await db.execute(text("SELECT id, document_id FROM chunks"))
        chunk_doc = {int(chunk_id): by_document[document_id] for chunk_id, document_id in rows}
        searched = []
        for query in queries:
            vector = await embedder.embed_query(query.query)
            vector_hits = await container.vector_index.store.search(db, user_id, vector, CANDIDATES)
            keyword_hits = await keyword_search(db, user_id, query.query, CANDIDATES)
            searched.append((query, vector_hits, keyword_hits))
    sweep: dict[float, tuple[float, float]] = {}
    for weight in SWEEP_WEIGHTS:
        scores = [
            ndcg_at_k(
                top_documents(
                    chunk_doc[chunk_id]
                    for chunk_id, _ in convex_fusion([(vhits, weight), (khits, 1 - weight)])
                ),
                {query.doc_id: 1},
            )
            for query, vhits, khits in searched
        ]
        sweep[weight] = (100 * statistics.fmean(scores[0::2]), 100 * statistics.fmean(scores[1::2]))
    return sweep


# -- 2. ingest speed -----------------------------------------------------------------------------


@dataclass
class IngestResult:
    pdf_pages: int
    pdf_one_s: float
    pdf_two_s: float
    chunks: int
    mean_tokens: float
    chunk_s: float
    embed_s: float
    query_embed: tuple[float, float, float]


def make_pdf(page_texts: Sequence[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for page_text in page_texts:
        pdf.add_page()
        pdf.multi_cell(0, 6, page_text.encode("latin-1", "replace").decode("latin-1"))
    return bytes(pdf.output())


def page_texts(items: Sequence[Item], pages: int, words_per_page: int = 450) -> list[str]:
    words = [word for item in items for word in item.text.split()]
    return [
        " ".join(words[(n * words_per_page) % len(words) :][:words_per_page]) for n in range(pages)
    ]


async def bench_ingest(folder: Path, items: list[Item], pages: int) -> IngestResult:
    settings = make_settings(folder)
    container = await start_container(settings)
    extractor = container.documents.ingestor.extractor
    chunker = Chunker.from_settings(settings)
    embedder = build_embedder(settings)
    try:
        pdf_path = folder / "bench.pdf"
        pdf_path.write_bytes(make_pdf(page_texts(items, pages)))
        warm_path = folder / "warm.pdf"
        warm_path.write_bytes(make_pdf(page_texts(items, 2)))
        # Start both worker processes (spawned: Python and PDFium load in each).
        await asyncio.gather(
            extractor.extract(warm_path, None, "a"), extractor.extract(warm_path, None, "b")
        )

        started = time.perf_counter()
        extracted = await extractor.extract(pdf_path, None, "a")
        pdf_one_s = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(
            extractor.extract(pdf_path, None, "a"), extractor.extract(pdf_path, None, "b")
        )
        pdf_two_s = time.perf_counter() - started

        started = time.perf_counter()
        drafts = chunker.chunk(extracted)
        chunk_s = time.perf_counter() - started

        await embedder.warm_up()  # type: ignore[attr-defined]
        await embedder.embed_documents([draft.text for draft in drafts[:32]])
        started = time.perf_counter()
        await embedder.embed_documents([draft.text for draft in drafts])
        embed_s = time.perf_counter() - started

        query_times: list[float] = []
        for item in items[:200]:
            started = time.perf_counter()
            await embedder.embed_query(item.query)
            query_times.append(time.perf_counter() - started)
        return IngestResult(
            pdf_pages=extracted.page_count,
            pdf_one_s=pdf_one_s,
            pdf_two_s=pdf_two_s,
            chunks=len(drafts),
            mean_tokens=statistics.fmean(draft.token_count for draft in drafts),
            chunk_s=chunk_s,
            embed_s=embed_s,
            query_embed=latency_row(query_times),
        )
    finally:
        await embedder.aclose()  # type: ignore[attr-defined]
        await stop_container(container)


# -- 3. query latency ----------------------------------------------------------------------------


class FixedVectorEmbedder:
    """Hands the retriever a prepared query vector, so its timing leaves the model out."""

    name = "fixed"
    dimension = 384

    def __init__(self) -> None:
        self.vector: list[float] = []

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vector for _ in texts]

    async def embed_query(self, text: str) -> list[float]:
        return self.vector


@dataclass
class LatencyCase:
    label: str
    user_chunks: int
    total_chunks: int
    retrieve: dict[str, tuple[float, float, float]]
    store_search: tuple[float, float, float]
    keyword_only: tuple[float, float, float]


def unit_vectors(rng: np.random.Generator, count: int, dimension: int = 384) -> np.ndarray:
    vectors = rng.standard_normal((count, dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


async def insert_chunks(
    container: Container,
    user_id: str,
    first_id: int,
    count: int,
    words: Sequence[str],
    rng: np.random.Generator,
    chunks_per_document: int = 10,
    batch: int = 5000,
) -> None:
    store = container.vector_index.store
    word_array = np.array(words)
    for start in range(0, count, batch):
        size = min(batch, count - start)
        documents = [
            {
                "user_id": user_id,
                "filename": f"synthetic-{first_id + start + n}.txt",
                "kind": "txt",
                "size_bytes": 1,
                "sha256": "0" * 64,
                "blob_key": "none",
                "status": DocumentStatus.READY.value,
                "pages": 1,
                "chunk_count": chunks_per_document,
                "attempts": 1,
            }
            for n in range(0, size, chunks_per_document)
        ]
        picks = rng.integers(0, len(word_array), size=(size, 150))
        vectors = unit_vectors(rng, size)
        async with unit_of_work(container.database.writer) as db:
            document_ids = list(
                await db.scalars(
                    insert(Document).returning(Document.id, sort_by_parameter_order=True),
                    documents,
                )
            )
            rows: list[dict[str, Any]] = [
                {
                    "id": first_id + start + n,
                    "document_id": document_ids[n // chunks_per_document],
                    "user_id": user_id,
                    "ordinal": n % chunks_per_document,
                    "page": 1,
                    "text": " ".join(word_array[picks[n]]),
                    "token_count": 200,
                }
                for n in range(size)
            ]
            await db.execute(insert(Chunk), rows)
            await store.upsert(
                db,
                user_id,
                [
                    VectorRecord(row["id"], row["document_id"], vectors[n].tolist())
                    for n, row in enumerate(rows)
                ],
            )


async def measure_case(
    container: Container,
    label: str,
    user_id: str,
    user_chunks: int,
    total_chunks: int,
    questions: Sequence[str],
    rng: np.random.Generator,
) -> LatencyCase:
    embedder = FixedVectorEmbedder()
    retriever = Retriever(
        container.database,
        embedder,
        container.vector_index,
        RetrievalOptions(top_k=5, candidates=30),  # the app's defaults (rag_top_k, candidates)
    )
    vectors = unit_vectors(rng, len(questions))
    store = container.vector_index.store
    timings: dict[str, list[float]] = {"hybrid": [], "vector": [], "store": [], "keyword": []}
    for round_ in range(2):  # the first round warms the page cache and is not counted
        for question, vector in zip(questions, vectors, strict=True):
            embedder.vector = vector.tolist()
            for mode in ("hybrid", "vector"):
                started = time.perf_counter()
                await retriever.retrieve(user_id, question, mode=mode)
                if round_:
                    timings[mode].append(time.perf_counter() - started)
            async with container.database.reader() as db:
                started = time.perf_counter()
                await store.search(db, user_id, embedder.vector, 30)
                store_s = time.perf_counter() - started
                started = time.perf_counter()
                await keyword_search(db, user_id, question, 30)
                keyword_s = time.perf_counter() - started
            if round_:
                timings["store"].append(store_s)
                timings["keyword"].append(keyword_s)
    return LatencyCase(
        label,
        user_chunks,
        total_chunks,
        {mode: latency_row(timings[mode]) for mode in ("hybrid", "vector")},
        latency_row(timings["store"]),
        latency_row(timings["keyword"]),
    )


async def bench_latency(
    folder: Path,
    items: list[Item],
    small_total: int,
    large_total: int,
    queries: int,
    database_url: str | None = None,
) -> list[LatencyCase]:
    overrides = {"database_url": database_url} if database_url else {}
    container = await start_container(make_settings(folder, **overrides))
    rng = np.random.default_rng(SEED)
    words = [word for item in items for word in item.text.split()]
    questions = [item.query for item in random.Random(SEED).sample(items, queries)]
    cases: list[LatencyCase] = []
    try:
        big = await add_user(container, "big")
        small = await add_user(container, "small")
        await insert_chunks(container, big, 1, small_total, words, rng)
        cases.append(
            await measure_case(container, "one user", big, small_total, small_total, questions, rng)
        )
        small_chunks = 1000
        big_more = large_total - small_total - small_chunks
        await insert_chunks(container, big, small_total + 1, big_more, words, rng)
        await insert_chunks(
            container, small, large_total - small_chunks + 1, small_chunks, words, rng
        )
        async with unit_of_work(container.database.writer) as db:
            await db.execute(text("ANALYZE"))
        cases.append(
            await measure_case(
                container,
                "the large user",
                big,
                large_total - small_chunks,
                large_total,
                questions,
                rng,
            )
        )
        cases.append(
            await measure_case(
                container, "a small user", small, small_chunks, large_total, questions, rng
            )
        )
        return cases
    finally:
        await stop_container(container)


@contextlib.contextmanager
def postgres_database(folder: Path) -> Iterator[str]:
    """A throwaway PostgreSQL server with pgvector (the ``pgserver`` package of the test extra)."""
    import pgserver

    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        server.psql("CREATE DATABASE bench;")
        socket_dir = server.get_uri().split("host=", 1)[1]
        yield f"postgresql+asyncpg://postgres:@/bench?host={socket_dir}"
    finally:
        server.cleanup()


# -- report --------------------------------------------------------------------------------------


def report(
    quality: QualityResult | None,
    ingest: IngestResult | None,
    latency: dict[str, list[LatencyCase]],
    elapsed_s: float,
) -> None:
    print(f"\nPython {platform.python_version()}, {platform.processor() or platform.machine()}")
    if quality is not None:
        print_quality(quality)
    if ingest is not None:
        print_ingest(ingest)
    for backend, cases in latency.items():
        print_latency(backend, cases)
    print(f"\ntotal run time {elapsed_s:.0f} s")


def print_quality(quality: QualityResult) -> None:
    print(
        f"\n## Retrieval quality: stdlib-docstring known-item set ({quality.documents} documents, "
        f"{quality.chunks} chunks, {quality.queries} queries; NOT SciFact)"
    )
    print(
        f"ingest through DocumentService.upload: {quality.ingest_s:.1f} s "
        f"({quality.documents / quality.ingest_s:.1f} documents/s)"
    )
    print(
        "\n| mode | nDCG@10 | recall@10 | nDCG@10 even queries (dev) | odd queries (held out) |"
        "\n|---|---|---|---|---|"
    )
    for label in MODES:
        even, odd = quality.ndcg_halves[label]
        print(
            f"| {label} | {quality.ndcg[label]:.1f} | {quality.recall[label]:.1f} | "
            f"{even:.1f} | {odd:.1f} |"
        )
    print(
        "\nconvex fusion's vector weight (the keyword side weighs 1 - w), nDCG@10:\n\n"
        "| w | even queries (dev) | odd queries (held out) |\n|---|---|---|"
    )
    for weight, (even, odd) in quality.weight_sweep.items():
        print(f"| {weight:.1f} | {even:.1f} | {odd:.1f} |")


def print_ingest(ingest: IngestResult) -> None:
    print("\n## Ingest speed\n\n| step | amount | seconds | rate |\n|---|---|---|---|")
    print(
        f"| PDF extraction, one PDF (one worker) | {ingest.pdf_pages} pages | "
        f"{ingest.pdf_one_s:.2f} | {ingest.pdf_pages / ingest.pdf_one_s:.0f} pages/s |"
    )
    print(
        f"| PDF extraction, two PDFs at once (two workers) | {2 * ingest.pdf_pages} pages | "
        f"{ingest.pdf_two_s:.2f} | {2 * ingest.pdf_pages / ingest.pdf_two_s:.0f} pages/s |"
    )
    print(
        f"| chunking (Chunker, 254 tokens, overlap 32) | {ingest.chunks} chunks "
        f"(mean {ingest.mean_tokens:.0f} tokens) | {ingest.chunk_s:.2f} | "
        f"{ingest.chunks / ingest.chunk_s:.0f} chunks/s |"
    )
    print(
        f"| embedding (all-MiniLM-L6-v2, CPU, batch 32) | {ingest.chunks} chunks | "
        f"{ingest.embed_s:.2f} | {ingest.chunks / ingest.embed_s:.1f} chunks/s |"
    )
    p50, p99, mean = ingest.query_embed
    print(
        f"\nquery embedding (embed_query, one question): p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"mean {mean:.1f} ms"
    )


def print_latency(backend: str, latency: list[LatencyCase]) -> None:
    print(f"\n## Query latency, {backend} (query embedding excluded; top_k 5, candidates 30)\n")
    print(
        "| user's chunks / total | hybrid p50 / p99 ms | vector-only p50 / p99 ms | "
        "store.search p50 / p99 ms | keyword_search p50 / p99 ms |\n|---|---|---|---|---|"
    )
    for case in latency:
        cells = [
            case.retrieve["hybrid"],
            case.retrieve["vector"],
            case.store_search,
            case.keyword_only,
        ]
        print(
            f"| {case.user_chunks:,} / {case.total_chunks:,} ({case.label}) | "
            + " | ".join(f"{c[0]:.2f} / {c[1]:.2f}" for c in cells)
            + " |"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small subset, ~2 minutes")
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the PostgreSQL/pgvector latency cases"
    )
    parser.add_argument(
        "--parts",
        default="quality,ingest,latency,scifact,embedders",
        help="comma-separated parts (default: all five)",
    )
    parser.add_argument(
        "--scifact", type=Path, default=DEFAULT_DIR, help="BEIR SciFact's folder (test split)"
    )
    parser.add_argument(
        "--embedders",
        default="local-torch,local",
        help="embedders the SciFact part runs (comma-separated OMNICHAT_EMBEDDER values)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    started = time.perf_counter()
    items = build_docstring_set()
    rng = random.Random(SEED)
    if args.quick:
        corpus = rng.sample(items, 300)
        queries = rng.sample(corpus, 100)
        pages, small_total, large_total, latency_queries = 40, 2_000, 10_000, 30
    else:
        corpus = items
        queries = items  # every document's summary is a query
        pages, small_total, large_total, latency_queries = 200, 10_000, 100_000, 100
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        folder = Path(tmp)
        quality = ingest = None
        latency: dict[str, list[LatencyCase]] = {}
        if "quality" in parts:
            quality = await bench_quality(folder / "quality", corpus, queries)
        if "ingest" in parts:
            ingest = await bench_ingest(folder / "ingest", items, pages)
        sizes = (small_total, large_total, latency_queries)
        if "latency" in parts:
            latency["SQLite/sqlite-vec"] = await bench_latency(folder / "latency", items, *sizes)
        if "latency" in parts and not args.no_postgres:
            with postgres_database(folder / "pg") as database_url:
                latency["PostgreSQL 16/pgvector (pgserver)"] = await bench_latency(
                    folder / "latency-pg", items, *sizes, database_url=database_url
                )
        scifact_results: list[SciFactResult] = []
        speed: list[SpeedRow] = []
        memory: list[MemoryRow] = []
        missing = missing_files(args.scifact)
        if {"scifact", "embedders"} & parts and missing:
            print(f"SciFact skipped: {args.scifact} lacks {', '.join(missing)}", file=sys.stderr)
        scifact = None if missing else load_scifact(args.scifact, 600 if args.quick else None)
        if "scifact" in parts and scifact is not None:
            for number, spec in enumerate(args.embedders.split(",")):
                scifact_results.append(
                    await bench_scifact(folder / f"scifact-{number}", scifact, spec.strip())
                )
        if "embedders" in parts:
            texts = (
                list(scifact.corpus.values())[: 150 if args.quick else 600]
                if scifact is not None
                else [item.text for item in items[:600]]
            )
            speed = await bench_speed(folder / "speed", texts, SPECS)
            pdf = make_pdf(page_texts(items, 20))
            memory = await asyncio.to_thread(bench_memory, SPECS, pdf)
    report(quality, ingest, latency, time.perf_counter() - started)
    print_scifact(scifact_results)
    print_embedders(speed, memory)


if __name__ == "__main__":
    asyncio.run(main())
