"""What flows through the RAG pipeline: extracted text, chunks, vectors and search hits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class DocumentKind(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    CSV = "csv"
    HTML = "html"
    TEXT = "txt"
    MARKDOWN = "md"


@dataclass(frozen=True)
class ExtractedPage:
    """One page of text. ``number`` is 1-based: a PDF's page, a PPTX's slide; the other kinds
    have one page, 1."""

    number: int
    text: str


@dataclass(frozen=True)
class ExtractedDocument:
    """``pages`` in order, empty ones included. ``ocr_pages``: PDF pages with no text layer,
    to be read by OCR; ``unread_pages``: pages that yielded no text (after OCR, for those),
    reported to the user rather than silently skipped."""

    kind: DocumentKind
    pages: Sequence[ExtractedPage]
    ocr_pages: tuple[int, ...] = ()
    unread_pages: tuple[int, ...] = ()

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def char_count(self) -> int:
        return sum(len(page.text) for page in self.pages)


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk before it is stored: its place in the document and its text."""

    ordinal: int  # 0-based position in the document
    page: int  # the page the chunk starts on
    text: str
    token_count: int  # counted with the embedding model's own tokenizer


@dataclass(frozen=True)
class VectorRecord:
    chunk_id: int
    document_id: str
    vector: Sequence[float]


@dataclass(frozen=True)
class VectorHit:
    chunk_id: int
    score: float  # cosine similarity: higher is closer


@dataclass(frozen=True)
class KeywordHit:
    chunk_id: int
    score: float  # BM25 (SQLite) or ts_rank_cd (PostgreSQL): higher is a better match
