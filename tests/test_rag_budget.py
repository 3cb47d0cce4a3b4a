"""Retrieved passages fit the model's context: with a small context and a large
``OMNICHAT_RAG_TOP_K`` the lowest-ranked passages are dropped (the sources shown are the ones
sent, numbered alike), never the question."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from omnichat.llm.context import estimate_tokens
from tests.conftest import make_settings, register_user
from tests.test_documents_lifecycle import started

CONTEXT_TOKENS = 2000
MAX_OUTPUT_TOKENS = 300


@pytest.fixture
async def small_context(
    app: FastAPI, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = make_settings(
        database_url,
        tmp_path,
        context_tokens=CONTEXT_TOKENS,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        rag_top_k=40,
        rag_candidates=60,
        chunk_tokens=200,
        chunk_overlap_tokens=0,
    )
    async for pair in started(settings):
        yield pair


async def test_passages_that_do_not_fit_are_dropped_lowest_ranked_first(
    small_context: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = small_context
    user = await register_user(client, "budget")
    for number in range(12):
        text = " ".join(
            f"Note {number}.{line}: the quasar observatory logged its readings again."
            for line in range(40)
        )
        r = await client.post(
            "/upload/document",
            files={"file": (f"notes-{number}.txt", text.encode(), "text/plain")},
            headers=user.headers,
        )
        assert r.status_code == 200, r.text
    r = await client.post(
        "/inference/query",
        json={"query": "What did the quasar observatory log?", "enable_rag": True},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text  # was 422 "too long for this model's context"
    body = r.json()
    sources = body["sources"]
    assert 0 < len(sources) < 40
    # The offline echo model repeats the user's turn: exactly the sources listed were sent,
    # numbered as listed, best first.
    sent = body["response"]
    assert re.findall(r"^\[(\d+)\] ", sent, flags=re.MULTILINE) == [
        str(n) for n in range(1, len(sources) + 1)
    ]
    assert estimate_tokens(sent) < CONTEXT_TOKENS - MAX_OUTPUT_TOKENS
    scores = [source["score"] for source in sources]
    assert scores == sorted(scores, reverse=True)
