"""Keyword index partitioned by owner (SQLite): FTS5 holds an owner token beside each chunk's
text, so a search matches (and BM25-scores) only the caller's chunks.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIGGERS = ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update")

# The owner token 'u' || hex(user_id) || 'x' must match omnichat.rag.keyword.owner_token.
_OWNER_PARTITIONED = [
    # Contentless: the text lives in chunks; the index keeps only what matching and BM25 need.
    "CREATE VIRTUAL TABLE chunks_fts USING fts5("
    "text, owner, content='', contentless_delete=1, tokenize='porter unicode61')",
    "INSERT INTO chunks_fts(rowid, text, owner) "
    "SELECT id, text, 'u' || lower(hex(user_id)) || 'x' FROM chunks",
    "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, text, owner) "
    "VALUES (new.id, new.text, 'u' || lower(hex(new.user_id)) || 'x'); END",
    "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
    "DELETE FROM chunks_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text, user_id ON chunks BEGIN "
    "DELETE FROM chunks_fts WHERE rowid = old.id; "
    "INSERT INTO chunks_fts(rowid, text, owner) "
    "VALUES (new.id, new.text, 'u' || lower(hex(new.user_id)) || 'x'); END",
]
_TEXT_ONLY = [  # revision 0003's index
    "CREATE VIRTUAL TABLE chunks_fts USING fts5("
    "text, content='chunks', content_rowid='id', tokenize='porter unicode61')",
    "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')",
    "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
]


def _replace_index(statements: list[str]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL filters by chunks.user_id in the same statement as its GIN match
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS chunks_fts")
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    _replace_index(_OWNER_PARTITIONED)


def downgrade() -> None:
    _replace_index(_TEXT_ONLY)
