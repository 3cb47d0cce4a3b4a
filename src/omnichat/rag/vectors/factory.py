"""The one place the vector store is chosen from settings."""

from __future__ import annotations

from omnichat.db.engine import Database
from omnichat.rag.vectors.base import VectorStore
from omnichat.settings import Settings

CHOICES = ("auto", "sqlite-vec", "pgvector", "pinecone")


def build_vector_store(settings: Settings, database: Database) -> VectorStore:
    choice = settings.vector_store.strip().lower()
    if choice == "auto":
        choice = "sqlite-vec" if settings.is_sqlite else "pgvector"
    if choice == "sqlite-vec":
        if not settings.is_sqlite:
            raise ValueError("OMNICHAT_VECTOR_STORE=sqlite-vec needs the SQLite database")
        from omnichat.rag.vectors.sqlite_vec import SqliteVecStore

        return SqliteVecStore(database)
    if choice == "pgvector":
        if settings.is_sqlite:
            raise ValueError("OMNICHAT_VECTOR_STORE=pgvector needs a PostgreSQL database")
        from omnichat.rag.vectors.pgvector import PgVectorStore

        return PgVectorStore(database)
    if choice == "pinecone":
        from omnichat.rag.vectors.pinecone import PineconeVectorStore

        return PineconeVectorStore.from_settings(settings)
    raise ValueError(f"OMNICHAT_VECTOR_STORE must be one of {', '.join(CHOICES)}, not {choice!r}")
