"""Text from uploaded documents. The kind is decided from the bytes, then the kind's parser
reads it, in sandbox worker processes (``sandbox``: capped memory, a deadline, fair turns per
user); scanned PDF pages go to OCR in a pool of their own. A long PDF is read, and a long text
chunked, in slices that each take a turn of their own, so other users' work runs between them.
Failures raise the 4xx errors of ``.errors``."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from omnichat.documents.extraction.errors import (
    DocumentTooComplex,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    NoExtractableText,
    UnreadableDocument,
    UnsafeArchive,
    UnsupportedDocumentType,
)
from omnichat.documents.extraction.ocr import ocr_pdf_page, warm_up_ocr
from omnichat.documents.extraction.parse import (
    ParseLimits,
    load_parsers,
    parse_file,
    parse_pdf_slice,
)
from omnichat.documents.extraction.pdf import PdfSlice, join_slices
from omnichat.documents.extraction.sandbox import SandboxPool
from omnichat.documents.extraction.sniff import PDF_MAGIC
from omnichat.rag.types import ChunkDraft, ExtractedDocument, ExtractedPage
from omnichat.ratelimit import TooManyRequests, rate_window
from omnichat.settings import Settings

if TYPE_CHECKING:
    from omnichat.rag.chunking import ChunkerConfig

__all__ = [
    "DocumentTooComplex",
    "DocumentTooLarge",
    "EmptyDocument",
    "EncryptedDocument",
    "Extractor",
    "NoExtractableText",
    "UnreadableDocument",
    "UnsafeArchive",
    "UnsupportedDocumentType",
]

logger = logging.getLogger("omnichat.documents.extraction")
MIB = 1024 * 1024
NO_TEXT = "The document contains no text"


@dataclass(frozen=True)
class OcrLimits:
    max_pages: int  # 0: no OCR
    page_timeout_s: float
    budget_s: float  # for all of one document's pages
    pages_per_hour: int  # per user, over all their documents


class Extractor:
    """One per app: it owns the worker pools, so call ``close()`` on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.limits = ParseLimits.from_settings(settings)
        self.ocr_limits = OcrLimits(
            max_pages=settings.ocr_max_pages,
            page_timeout_s=settings.ocr_page_timeout_s,
            budget_s=settings.ocr_budget_s,
            pages_per_hour=settings.ocr_pages_per_hour,
        )
        # Pages OCR'd per user in a moving hour, shared by every worker through Redis.
        self._ocr_allowance = rate_window(
            f"{settings.ocr_pages_per_hour}/hour", settings.redis_url, namespace="ocr-pages"
        )
        # A worker is killed when still busy after its hard limit: parse_timeout_s for a PDF,
        # whose own deadline grows with its pages; twice the fixed deadline of every other kind
        # (a parser checks its deadline between steps; one step in C code, such as lxml on a
        # tag with 100,000 attributes, checks nothing).
        self._pdf_timeout_s = settings.parse_timeout_s
        self._other_timeout_s = min(settings.parse_timeout_s, 2 * settings.parse_deadline_s)
        self._parsers = SandboxPool(
            "parser",
            settings.extraction_workers,
            settings.parser_memory_mb * MIB,
            warm_up=load_parsers,
        )
        self._ocr = SandboxPool(
            "ocr", settings.ocr_workers, settings.ocr_memory_mb * MIB, warm_up=warm_up_ocr
        )
        # Imported here, not at the top: the parser workers import this package, and the
        # tokenizer library's address space would come out of their memory cap.
        from omnichat.rag.chunking import SLICE_CHARS, warm_up_chunker

        self._chunkers = SandboxPool(
            "chunker",
            settings.chunker_workers,
            settings.chunker_memory_mb * MIB,
            warm_up=warm_up_chunker,
        )
        self._chunk_timeout_s = settings.chunk_timeout_s
        self.chunk_slice_chars = SLICE_CHARS  # text per chunker job

    async def extract(self, path: Path, filename: str | None, owner: str) -> ExtractedDocument:
        """The text of the file at ``path``, read in a sandbox worker on ``owner``'s turn.
        ``filename`` (the client's) only picks a flavour the bytes allow (Markdown over plain
        text, CSV). Pages left for OCR are read later (``read_scanned_pages``)."""
        if _is_pdf(path):
            document = await self._read_pdf(path, owner)
        else:
            document = await self._parsers.run(
                owner, parse_file, str(path), filename, self.limits, timeout_s=self._other_timeout_s
            )
        if not document.char_count and not (document.ocr_pages and self.ocr_limits.max_pages):
            raise NoExtractableText(
                "The PDF has no text layer (it may be scanned or image-only) and OCR is off "
                "(OMNICHAT_OCR_MAX_PAGES=0)"
                if document.ocr_pages
                else NO_TEXT
            )
        return document

    async def _read_pdf(self, path: Path, owner: str) -> ExtractedDocument:
        """The PDF at ``path``, read slice by slice (``parse_pdf_slice``: at most
        OMNICHAT_PARSE_SLICE_PAGES pages, or 2 s, a job), each job on ``owner``'s turn, so
        other users' jobs get a worker between them; one job for a short PDF. The document's
        limits count all its slices: its characters, and its deadline their time (waiting for
        a turn not included); OMNICHAT_PARSE_TIMEOUT_S bounds each slice."""
        slices: list[PdfSlice] = []
        while not slices or slices[-1].next_page <= slices[-1].page_count:
            first = slices[-1].next_page if slices else 1
            slices.append(
                await self._parsers.run(
                    owner,
                    parse_pdf_slice,
                    str(path),
                    self.limits,
                    first,
                    sum(part.char_count for part in slices),
                    slices[-1].spent_s if slices else 0.0,
                    timeout_s=self._pdf_timeout_s,
                )
            )
        return join_slices(slices)

    async def read_scanned_pages(
        self, path: Path, document: ExtractedDocument, owner: str
    ) -> ExtractedDocument:
        """``document`` with its ``ocr_pages`` read by OCR, one page per job, within the OCR
        limits: a page over the page count, over the document's time budget, past ``owner``'s
        hourly allowance (OMNICHAT_OCR_PAGES_PER_HOUR, counted per page sent to OCR), past its
        own timeout, or without any text read is listed in ``unread_pages``. Raises
        ``NoExtractableText`` (422) when the document ends up with no text at all, or
        ``TooManyRequests`` (429, ``Retry-After``: seconds until the allowance frees a page)
        when that is because the allowance was used up."""
        if not document.ocr_pages:
            return document
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.ocr_limits.budget_s
        texts = {page.number: page.text for page in document.pages}
        unread: list[int] = list(document.unread_pages)
        allowance_wait_s: float | None = None  # once set, the allowance is used up
        for index, number in enumerate(document.ocr_pages):
            remaining = ends - loop.time()
            if index >= self.ocr_limits.max_pages or remaining <= 0 or allowance_wait_s:
                unread.append(number)
                continue
            allowance_wait_s = await self._ocr_allowance.hit(owner)
            if allowance_wait_s is not None:
                unread.append(number)
                continue
            try:
                text = await self._ocr.run(
                    owner,
                    ocr_pdf_page,
                    str(path),
                    number,
                    timeout_s=min(self.ocr_limits.page_timeout_s, remaining),
                )
            except (DocumentTooComplex, UnreadableDocument) as exc:
                logger.warning("OCR of a page failed", extra={"page": number, "why": exc.detail})
                text = ""
            if text:
                texts[number] = text
            else:
                unread.append(number)
        pages = [
            ExtractedPage(number=page.number, text=texts[page.number]) for page in document.pages
        ]
        read = replace(document, pages=pages, ocr_pages=(), unread_pages=tuple(sorted(unread)))
        if not read.char_count and allowance_wait_s is not None:
            raise self._allowance_used_up(allowance_wait_s)
        if not read.char_count:
            raise NoExtractableText(
                f"{NO_TEXT}: it has no text layer and OCR read no text on its "
                f"{len(document.ocr_pages)} scanned page(s)"
            )
        return read

    def _allowance_used_up(self, wait_s: float) -> TooManyRequests:
        frees_at = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + wait_s))
        return TooManyRequests.after(
            wait_s,
            f"{NO_TEXT} layer, and your OCR allowance ({self.ocr_limits.pages_per_hour} pages "
            f"per hour) is used up until {frees_at}",
        )

    async def chunk(
        self, document: ExtractedDocument, owner: str, config: ChunkerConfig
    ) -> list[ChunkDraft]:
        """``document``'s chunks (``Chunker.chunk``), made in chunker workers, a slice of about
        ``chunk_slice_chars`` characters a job, each job on ``owner``'s turn (so other users'
        jobs get a worker between them): capped memory (OMNICHAT_CHUNKER_MEMORY_MB) and time
        (OMNICHAT_CHUNK_TIMEOUT_S, for all the slices together, waiting for turns not
        included, and for each), past which the document is ``DocumentTooComplex``;
        ``PayloadTooLarge`` past ``config.max_chunks``."""
        from omnichat.rag.chunking import chunk_slice, slices

        drafts: list[ChunkDraft] = []
        spent_s = 0.0
        for part in slices(document, self.chunk_slice_chars):
            made, spent_s = await self._chunkers.run(
                owner,
                chunk_slice,
                part,
                config,
                len(drafts),
                spent_s,
                self._chunk_timeout_s,
                timeout_s=self._chunk_timeout_s,
            )
            drafts.extend(made)
        return drafts

    def close(self) -> None:
        """Stop the workers. Blocks until they exit."""
        self._parsers.close()
        self._ocr.close()
        self._chunkers.close()


def _is_pdf(path: Path) -> bool:
    """By its first bytes, as ``sniff.sniff_kind`` decides (nothing else of it is read here)."""
    with path.open("rb") as file:
        return file.read(len(PDF_MAGIC)) == PDF_MAGIC
