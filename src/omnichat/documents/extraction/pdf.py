"""PDF text, page by page, with PDFium in worker processes (PDFium is not thread-safe, and a
crash or leak in it must not take the server down)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

import pypdfium2 as pdfium

from omnichat.documents.extraction.errors import (
    DocumentTooLarge,
    EncryptedDocument,
    NoExtractableText,
    UnreadableDocument,
)
from omnichat.documents.extraction.text import clean_text
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage

logger = logging.getLogger("omnichat.documents.pdf")

T = TypeVar("T")
PageTexts = list[tuple[int, str]]

# PDFium load error codes (FPDF_ERR_*) that mean "needs a password" or "unsupported security".
_ENCRYPTION_ERRORS = frozenset({pdfium.raw.FPDF_ERR_PASSWORD, pdfium.raw.FPDF_ERR_SECURITY})
CORRUPT_DETAIL = "The PDF is corrupt or malformed and could not be read"
_SPACE_RUNS = re.compile(r"[ \t\u00a0]+")
_SPACE_AROUND_NEWLINES = re.compile(r" *\n *")
_EXCESS_NEWLINES = re.compile(r"\n{3,}")
# PDFium marks soft hyphens at line ends with U+0002 (dropped by clean_text) or U+FFFE.
_HYPHEN_MARKERS = re.compile("\ufffe")


def normalize_pdf_text(text: str) -> str:
    text = clean_text(_HYPHEN_MARKERS.sub("", text))
    text = _SPACE_RUNS.sub(" ", text)
    text = _SPACE_AROUND_NEWLINES.sub("\n", text)
    return _EXCESS_NEWLINES.sub("\n\n", text).strip()


def read_pdf_pages(path: str, max_pages: int, max_chars: int | None) -> PageTexts:
    """Runs in a worker process. Returns (page number, text) for every page, text possibly
    empty; raises the extraction errors, which pickle back to the parent as they are."""
    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        # PDFium reports its last error, and some failures (an empty page tree) set none, so
        # a password error may be left over from an earlier file: confirm it from the bytes.
        if getattr(exc, "err_code", None) in _ENCRYPTION_ERRORS and _declares_encryption(path):
            raise EncryptedDocument from None
        raise UnreadableDocument(CORRUPT_DETAIL) from None
    try:
        page_count = len(document)
        if page_count == 0:
            raise UnreadableDocument("The PDF has no pages")
        if page_count > max_pages:
            raise DocumentTooLarge(
                f"The PDF has {page_count} pages; at most {max_pages} pages are accepted"
            )
        pages: PageTexts = []
        total_chars = 0
        for index in range(page_count):
            text = normalize_pdf_text(_page_text(document, index))
            total_chars += len(text)
            if max_chars is not None and total_chars > max_chars:
                raise DocumentTooLarge(
                    f"The PDF has more than {max_chars} characters of text, the limit"
                )
            pages.append((index + 1, text))
        return pages
    except pdfium.PdfiumError:
        raise UnreadableDocument(CORRUPT_DETAIL) from None
    finally:
        document.close()


def _declares_encryption(path: str) -> bool:
    """Whether the file has an /Encrypt entry (a trailer or xref-stream key, never compressed)."""
    marker = b"/Encrypt"
    tail = b""
    with open(path, "rb") as handle:
        while block := handle.read(1024 * 1024):
            if marker in tail + block:
                return True
            tail = block[-len(marker) :]
    return False


def _page_text(document: pdfium.PdfDocument, index: int) -> str:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()


class PdfExtractor:
    """Owns a process pool, started on first use and rebuilt if a worker dies."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def extract(
        self, path: Path, max_pages: int, max_chars: int | None = None
    ) -> ExtractedDocument:
        page_texts = await self._run_in_pool(read_pdf_pages, str(path), max_pages, max_chars)
        if not any(text for _, text in page_texts):
            raise NoExtractableText(
                "The PDF has no text layer (it may be scanned or image-only); "
                "OCR is not supported, so upload a PDF with selectable text"
            )
        pages = [ExtractedPage(number=number, text=text) for number, text in page_texts]
        return ExtractedDocument(kind=DocumentKind.PDF, pages=pages)

    async def _run_in_pool(self, function: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        # A broken pool may be another job's crash, so retry once on a fresh pool; a second
        # crash is this file's doing.
        for attempt in range(2):
            pool = self._get_pool()
            try:
                return await loop.run_in_executor(pool, function, *args)
            except BrokenProcessPool:
                logger.warning("PDF worker process died (attempt %d)", attempt + 1)
                self._discard(pool)
        raise UnreadableDocument("The PDF could not be processed (the PDF reader crashed on it)")

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Spawned, not forked: forking a process that runs threads can deadlock the child.
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers, cancelling queued work. Blocks until they exit."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
