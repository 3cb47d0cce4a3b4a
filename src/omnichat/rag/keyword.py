"""Keyword search over chunks: SQLite FTS5 (BM25) or PostgreSQL full text, in the app's database.

The question becomes an OR of its words (a question's words are rarely all in one passage), and
every query is scoped to the caller's chunks of ready documents in the same statement.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MAX_TERMS = 32
_WORD = re.compile(r"\w+", re.UNICODE)

_SQLITE = text(
    "SELECT c.id FROM chunks_fts "
    "JOIN chunks c ON c.id = chunks_fts.rowid "
    "JOIN documents d ON d.id = c.document_id "
    "WHERE chunks_fts MATCH :query AND c.user_id = :user AND d.status = 'ready' "
    "ORDER BY bm25(chunks_fts) LIMIT :limit"
)
_POSTGRES = text(
    "SELECT c.id FROM chunks c "
    "JOIN documents d ON d.id = c.document_id, "
    "to_tsquery('english', :query) AS q "
    "WHERE c.search_vector @@ q AND c.user_id = :user AND d.status = 'ready' "
    "ORDER BY ts_rank_cd(c.search_vector, q) DESC, c.id LIMIT :limit"
)


def query_terms(question: str) -> list[str]:
    """Distinct words of the question, in order (``\\w+`` only: no query-syntax characters)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(question.lower()):
        if word not in seen:
            seen[word] = None
        if len(seen) == MAX_TERMS:
            break
    return list(seen)


async def keyword_search(
    session: AsyncSession, user_id: str, question: str, limit: int
) -> list[int]:
    """Chunk ids, best match first."""
    terms = query_terms(question)
    if not terms:
        return []
    if session.get_bind().dialect.name == "sqlite":
        statement, query = _SQLITE, " OR ".join(f'"{term}"' for term in terms)
    else:
        statement, query = _POSTGRES, " | ".join(terms)
    rows = await session.execute(statement, {"query": query, "user": user_id, "limit": limit})
    return [int(chunk_id) for (chunk_id,) in rows]
