"""Keyword search over chunks: SQLite FTS5 (BM25) or PostgreSQL full text, in the app's database.

The question becomes an OR of its words (a question's words are rarely all in one passage), and
every query is scoped to the caller's chunks of ready documents in the same statement. On SQLite
the FTS5 index also holds an owner token per chunk, and the match requires it: BM25 is computed
only for the caller's chunks, so a small user's search costs the same beside a large one.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.rag.types import KeywordHit

MAX_TERMS = 32
_WORD = re.compile(r"\w+", re.UNICODE)

# bm25() is lower-is-better; the owner column weighs nothing in it.
_SQLITE = text(
    "SELECT c.id, -bm25(chunks_fts, 1.0, 0.0) AS score FROM chunks_fts "
    "JOIN chunks c ON c.id = chunks_fts.rowid "
    "JOIN documents d ON d.id = c.document_id "
    "WHERE chunks_fts MATCH :query AND c.user_id = :user AND d.status = 'ready' "
    "ORDER BY bm25(chunks_fts, 1.0, 0.0) LIMIT :limit"
)
_POSTGRES = text(
    "SELECT c.id, ts_rank_cd(c.search_vector, q) AS score FROM chunks c "
    "JOIN documents d ON d.id = c.document_id, "
    "to_tsquery('english', :query) AS q "
    "WHERE c.search_vector @@ q AND c.user_id = :user AND d.status = 'ready' "
    "ORDER BY score DESC, c.id LIMIT :limit"
)


def owner_token(user_id: str) -> str:
    """The FTS5 token for a chunk's owner (must match migration 0004's trigger): hex keeps any
    id one token, and the trailing ``x`` is a suffix the porter stemmer never strips."""
    return "u" + user_id.encode().hex() + "x"


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
) -> list[KeywordHit]:
    """The best matches first; a hit's score is higher for a better match."""
    terms = query_terms(question)
    if not terms:
        return []
    if session.get_bind().dialect.name == "sqlite":
        words = " OR ".join(f'"{term}"' for term in terms)
        statement, query = _SQLITE, f'owner : "{owner_token(user_id)}" AND text : ({words})'
    else:
        statement, query = _POSTGRES, " | ".join(terms)
    rows = await session.execute(statement, {"query": query, "user": user_id, "limit": limit})
    return [KeywordHit(int(chunk_id), float(score)) for chunk_id, score in rows]
