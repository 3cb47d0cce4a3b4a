"""Long document work runs in slices, each a sandbox job of its own on its owner's turn: between
the slices of two users' large PDFs (or texts to chunk) a third user's small upload gets a
worker. A document read or chunked in slices comes out exactly as in one job, within the same
limits (its pages, characters, chunks and deadline count all its slices), and cancelling it
kills the slice being worked on and runs no more."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from omnichat.documents.extraction import DocumentTooComplex, DocumentTooLarge, Extractor
from omnichat.documents.extraction.parse import ParseLimits, parse_file
from omnichat.documents.extraction.sandbox import SandboxPool
from omnichat.errors import PayloadTooLarge
from omnichat.rag.chunking import Chunker, ChunkerConfig, blocks, slices
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage
from omnichat.settings import Settings
from tests import sandbox_jobs
from tests.docs_factory import make_pdf, make_shared_stream_pdf, make_varied_pdf

CONFIG = ChunkerConfig(max_tokens=254, overlap_tokens=32)
MakeExtractor = Callable[..., Extractor]
SENTENCE = "The harbour authority recorded tides, cargo and weather once more. "


def _settings(**overrides: object) -> Settings:
    return Settings.model_validate({"extraction_workers": 2, "chunker_workers": 2, **overrides})


@pytest.fixture
def extractor_of() -> Iterator[MakeExtractor]:
    """``extractor_of(**settings)``: Extractors closed after the test."""
    made: list[Extractor] = []

    def make(**overrides: object) -> Extractor:
        made.append(Extractor(_settings(**overrides)))
        return made[-1]

    yield make
    for extractor in made:
        extractor.close()


def jobs_of(pool: SandboxPool, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The owners of the jobs ``pool`` is given from now on, one entry per job, as it starts
    waiting for its turn."""
    owners: list[str] = []
    run = pool.run

    async def counted(owner: str, *args: Any, **kwargs: Any) -> Any:
        owners.append(owner)
        return await run(owner, *args, **kwargs)

    monkeypatch.setattr(pool, "run", counted)
    return owners


def text(words: int, seed: int) -> str:
    """Paragraphs of 60 words, each different (the chunker caches the token counts of repeats)."""
    chosen = random.Random(seed).choices(SENTENCE.split(), k=words)
    return "\n\n".join(" ".join(chosen[i : i + 60]) for i in range(0, len(chosen), 60))


def document(*pages: str) -> ExtractedDocument:
    return ExtractedDocument(
        kind=DocumentKind.TEXT,
        pages=[ExtractedPage(number, page) for number, page in enumerate(pages, start=1)],
    )


async def started(jobs: list[str], count: int) -> None:
    """Returns once ``count`` jobs have started (as ``jobs_of`` counts them)."""
    async with asyncio.timeout(60):
        while len(jobs) < count:  # noqa: ASYNC110 - the spy counts as the jobs start
            await asyncio.sleep(0.01)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- fair turns between slices -------------------------------------------------------------------


async def test_a_small_pdf_is_read_between_the_slices_of_two_large_ones(
    extractor_of: MakeExtractor, tmp_path: Path
) -> None:
    """Two accounts' long PDFs hold both parser workers; a third user's one-page PDF is read
    after one slice of theirs, not after a whole document."""
    extractor = extractor_of(parse_slice_pages=25)
    large = make_shared_stream_pdf(pages=500, operations=3000)  # seconds of reading each
    paths = {
        "a": write(tmp_path / "a.pdf", large),
        "b": write(tmp_path / "b.pdf", large),
        "c": write(tmp_path / "c.pdf", make_pdf(["One page about the lighthouse."])),
    }
    finished: list[str] = []

    async def read(owner: str) -> ExtractedDocument:
        read = await extractor.extract(paths[owner], None, owner)
        finished.append(owner)
        return read

    a, b, c = await asyncio.gather(read("a"), read("b"), read("c"))

    assert finished[0] == "c"
    assert c.pages[0].text == "One page about the lighthouse."
    assert a.page_count == b.page_count == 500


async def test_a_small_text_is_chunked_between_the_slices_of_two_large_ones(
    extractor_of: MakeExtractor,
) -> None:
    extractor = extractor_of()
    extractor.chunk_slice_chars = 20_000
    documents = {
        "a": document(text(30_000, 1)),  # ~200 KB: seconds of chunking each
        "b": document(text(30_000, 2)),
        "c": document("The lighthouse keeper feeds eleven gulls."),
    }
    finished: list[str] = []

    async def chunk(owner: str) -> None:
        await extractor.chunk(documents[owner], owner, CONFIG)
        finished.append(owner)

    await asyncio.gather(chunk("a"), chunk("b"), chunk("c"))

    assert finished[0] == "c"


# -- PDF slices: the same document, the same limits ---------------------------------------------


async def test_a_pdf_read_in_slices_is_the_pdf_read_in_one_job(
    extractor_of: MakeExtractor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "varied.pdf", make_varied_pdf(26))
    whole = parse_file(str(path), None, ParseLimits.from_settings(_settings()))
    extractor = extractor_of(parse_slice_pages=5)
    jobs = jobs_of(extractor._parsers, monkeypatch)

    sliced = await extractor.extract(path, None, "u1")

    assert sliced == whole
    assert len(jobs) >= 6  # 26 pages, at most 5 a job
    # Every sort of page is there, across the slices: text, notes, scans (OCR), empty pages.
    assert whole.pages[25].text.endswith("A text box on page 26.")
    assert whole.ocr_pages == tuple(range(3, 27, 4))
    assert whole.unread_pages == tuple(range(4, 27, 4))


async def test_a_short_pdf_is_read_in_one_job(
    extractor_of: MakeExtractor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extractor = extractor_of(parse_slice_pages=5)
    jobs = jobs_of(extractor._parsers, monkeypatch)

    read = await extractor.extract(write(tmp_path / "short.pdf", make_varied_pdf(5)), None, "u1")

    assert read.page_count == 5
    assert jobs == ["u1"]


@pytest.mark.parametrize(
    ("limits", "first_job_only"),
    [
        pytest.param({"max_extracted_chars": 1000}, False, id="characters"),
        pytest.param({"max_pdf_pages": 20}, True, id="pages"),
    ],
)
async def test_a_pdf_in_slices_keeps_the_documents_limits(
    extractor_of: MakeExtractor,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    limits: dict[str, int],
    first_job_only: bool,
) -> None:
    """The characters of all slices count toward OMNICHAT_MAX_EXTRACTED_CHARS, refused as in
    one job; the page count is refused by the first job."""
    path = write(tmp_path / "long.pdf", make_varied_pdf(60))
    with pytest.raises(DocumentTooLarge) as whole:
        parse_file(str(path), None, ParseLimits.from_settings(_settings(**limits)))
    extractor = extractor_of(parse_slice_pages=3, **limits)
    jobs = jobs_of(extractor._parsers, monkeypatch)

    with pytest.raises(DocumentTooLarge) as sliced:
        await extractor.extract(path, None, "u1")

    assert sliced.value.detail == whole.value.detail
    assert (len(jobs) == 1) is first_job_only


async def test_a_pdfs_deadline_counts_all_its_slices(
    extractor_of: MakeExtractor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each slice is well within the deadline; the document, all its slices together, is not."""
    path = write(tmp_path / "slow.pdf", make_shared_stream_pdf(pages=600, operations=3000))
    extractor = extractor_of(
        parse_slice_pages=10, parse_deadline_s=0.5, parse_deadline_per_page_s=0
    )
    jobs = jobs_of(extractor._parsers, monkeypatch)

    with pytest.raises(DocumentTooComplex, match=r"took longer than 0\.5 s to read"):
        await extractor.extract(path, None, "u1")

    assert len(jobs) > 2


async def test_cancelling_a_pdf_read_in_slices_kills_its_slice_and_runs_no_more(
    extractor_of: MakeExtractor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deleted document's reading stops at once: the worker reading its slice is killed (and
    replaced), and no further slice is read."""
    path = write(tmp_path / "long.pdf", make_shared_stream_pdf(pages=1500, operations=5000))
    # One worker, with room enough never to retire for memory: a new one means a killed one.
    extractor = extractor_of(extraction_workers=1, parse_slice_pages=300, parser_memory_mb=4096)
    worker = await extractor._parsers.run("other", sandbox_jobs.pid, timeout_s=60)
    jobs = jobs_of(extractor._parsers, monkeypatch)
    reading = asyncio.create_task(extractor.extract(path, None, "u1"))
    await started(jobs, 2)
    await asyncio.sleep(0.3)  # the second slice (of ~2 s) is being read

    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading

    assert await extractor._parsers.run("other", sandbox_jobs.pid, timeout_s=60) != worker
    await asyncio.sleep(1.5)
    assert jobs.count("u1") == 2
    assert extractor._parsers._slots.held == 0


# -- chunking in slices: the same chunks, the same limits ----------------------------------------


def test_slices_cut_between_blocks_and_chunk_as_the_whole_document() -> None:
    """Chunks never span a page or a block, so the slices' chunks, ordinals continued, are the
    document's: also when a page longer than several blocks is cut between slices."""
    chunker = Chunker(**asdict(CONFIG))
    pages = ("", text(21_000, 3), " \n ", text(900, 4), text(2_000, 5))  # ~140 KB: 3 blocks
    whole = chunker.chunk(document(*pages))
    for size in (1, 50_000, 10**9):
        parts = list(slices(document(*pages), size))
        drafts: list[Any] = []
        for part in parts:
            drafts.extend(chunker.chunk(part, first_ordinal=len(drafts)))
        assert drafts == whole
        rejoined = {number: "" for number in range(1, len(pages) + 1)}
        for part in parts:
            for page in part.pages:
                rejoined[page.number] += page.text
        assert [rejoined[number].strip() for number in rejoined] == [p.strip() for p in pages]
    assert len(list(slices(document(*pages), 1))) == sum(len(blocks(p)) for p in pages if p)
    assert len(list(slices(document(*pages), 10**9))) == 1


async def test_a_document_chunked_in_slices_is_the_document_chunked_in_one_job(
    extractor_of: MakeExtractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = (text(3_000, 6), "", text(21_000, 7), text(500, 8))
    whole = Chunker(**asdict(CONFIG)).chunk(document(*pages))
    extractor = extractor_of()
    extractor.chunk_slice_chars = 30_000
    jobs = jobs_of(extractor._chunkers, monkeypatch)

    sliced = await extractor.chunk(document(*pages), "u1", CONFIG)

    assert sliced == whole
    assert [draft.ordinal for draft in sliced] == list(range(len(whole)))
    assert len(jobs) >= 3  # the long page's three blocks are in different slices


async def test_the_chunk_cap_counts_all_slices(
    extractor_of: MakeExtractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = tuple(text(1_500, seed) for seed in range(9, 17))  # ~10 KB each
    count = len(Chunker(**asdict(CONFIG)).chunk(document(*pages)))
    capped = ChunkerConfig(**{**asdict(CONFIG), "max_chunks": count - 1})
    with pytest.raises(PayloadTooLarge) as whole:
        Chunker(**asdict(capped)).chunk(document(*pages))
    extractor = extractor_of()
    extractor.chunk_slice_chars = 10_000
    jobs = jobs_of(extractor._chunkers, monkeypatch)

    with pytest.raises(PayloadTooLarge) as sliced:
        await extractor.chunk(document(*pages), "u1", capped)

    assert sliced.value.detail == whole.value.detail
    assert len(jobs) > 2
    exact = ChunkerConfig(**{**asdict(CONFIG), "max_chunks": count})
    assert len(await extractor.chunk(document(*pages), "u1", exact)) == count


async def test_the_chunking_time_limit_counts_all_slices(
    extractor_of: MakeExtractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OMNICHAT_CHUNK_TIMEOUT_S is the time one document may take, all its slices together."""
    extractor = extractor_of(chunk_timeout_s=1.0)
    extractor.chunk_slice_chars = 20_000
    jobs = jobs_of(extractor._chunkers, monkeypatch)

    with pytest.raises(DocumentTooComplex, match="took longer than 1 s to read"):
        await extractor.chunk(document(text(150_000, 11)), "u1", CONFIG)  # ~1 MB: ~6 s

    assert len(jobs) > 2


async def test_cancelling_chunking_in_slices_runs_no_more(
    extractor_of: MakeExtractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    extractor = extractor_of()
    extractor.chunk_slice_chars = 20_000
    jobs = jobs_of(extractor._chunkers, monkeypatch)
    chunking = asyncio.create_task(extractor.chunk(document(text(60_000, 12)), "u1", CONFIG))
    await started(jobs, 2)

    chunking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await chunking

    await asyncio.sleep(1.0)
    assert len(jobs) == 2
    assert extractor._chunkers._slots.held == 0
    # The pool still works for the next document.
    assert await extractor.chunk(document("A short note."), "u2", CONFIG)
