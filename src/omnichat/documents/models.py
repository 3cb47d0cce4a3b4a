from __future__ import annotations

from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from omnichat.db.base import Base, IdMixin, TimestampMixin


class DocumentStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


def original_key(user_id: str, document_id: str) -> str:
    """The blob key of a document's original: its own, named by its id."""
    return f"documents/{user_id}/{document_id}"


class Document(IdMixin, TimestampMixin, Base):
    """An uploaded file. Its chunks are searched only once it is ``ready``: chunks, vectors and
    that status are written in one transaction."""

    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_user_created", "user_id", "created_at"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    session_id: Mapped[str | None] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="SET NULL"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255), nullable=False)  # sanitized, display only
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    blob_key: Mapped[str] = mapped_column(String(255), nullable=False)
    # False when the stored original is known not to be this document's (``omnichat repair``
    # of the shared-blob fault): the document stays searchable, its download answers 410.
    original_available: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true(), nullable=False
    )
    status: Mapped[str] = mapped_column(
        String(16), default=DocumentStatus.PROCESSING.value, nullable=False
    )
    error: Mapped[str | None] = mapped_column(String(1000))
    pages: Mapped[int | None] = mapped_column(Integer)
    # Pages that yielded no text (scanned pages OCR could not read, or over the OCR limits).
    unread_pages: Mapped[list[int] | None] = mapped_column(JSON(none_as_null=True))
    chunk_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # The embedder the document's vectors were made with (``omnichat reindex`` after a change).
    embedder: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)

    @property
    def has_original(self) -> bool:
        """Whether the blob under ``blob_key`` is this document's own original."""
        return self.original_available and self.blob_key == original_key(self.user_id, self.id)


class Chunk(Base):
    """A passage of a document. Integer ids: they are the rowids of the FTS5 and vec0 tables."""

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_document_ordinal", "document_id", "ordinal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[str] = mapped_column(String(36), index=True, nullable=False)
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    page: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    token_count: Mapped[int] = mapped_column(Integer, nullable=False)


class IndexInfo(Base):
    """One row per vector index: which embedder and dimension it was built with."""

    __tablename__ = "vector_index"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    embedder: Mapped[str] = mapped_column(String(200), nullable=False)
    dimension: Mapped[int] = mapped_column(Integer, nullable=False)
