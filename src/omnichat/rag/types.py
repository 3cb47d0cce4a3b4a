"""What flows through the RAG pipeline: extracted text, chunks, vectors and search hits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class DocumentKind(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    TEXT = "txt"
    MARKDOWN = "md"


@dataclass(frozen=True)
class ExtractedPage:
    """One page of text. ``number`` is 1-based for PDFs; DOCX, TXT and MD have one page, 1."""

    number: int
    text: str


@dataclass(frozen=True)
class ExtractedDocument:
    kind: DocumentKind
    pages: Sequence[ExtractedPage]

    @property
    def page_count(self) -> int:
        return len(self.pages)


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
