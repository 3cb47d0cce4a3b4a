"""Scanned PDFs are read by OCR, offline, page numbers kept: only the pages without a text layer
are OCR'd, a page that yields no text is reported (``pages_without_text``), and the OCR limits
(pages, time) are honoured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from omnichat.container import Container
from tests.conftest import TestUser, make_settings, register_user
from tests.docs_factory import make_scanned_pdf
from tests.test_documents_lifecycle import started

SCANNED = make_scanned_pdf(
    [
        ("scan", ["Ledger of the zebrafinch colony", "counted by quincegold keepers"]),
        ("text", ["A typed page about marmalade recipes."]),
        ("blank", []),
        ("scan", ["Second scan mentions lighthousewolves"]),
    ]
)


async def upload(client: httpx.AsyncClient, user: TestUser, data: bytes) -> httpx.Response:
    return await client.post(
        "/upload/document",
        files={"file": ("scan.pdf", data, "application/pdf")},
        headers=user.headers,
    )


async def test_a_scanned_pdf_is_read_by_ocr_page_by_page(
    client: httpx.AsyncClient, container: Container
) -> None:
    user = await register_user(client, "ocr")
    r = await upload(client, user, SCANNED)
    assert r.status_code == 200, r.text
    document = r.json()
    assert document["status"] == "ready"
    assert document["pages"] == 4
    assert document["pages_without_text"] == [3]  # the blank scan, reported
    for word, page in (("zebrafinch", 1), ("quincegold", 1), ("marmalade", 2)):
        hits = await container.retriever.retrieve(user.id, word, mode="keyword")
        assert hits, word
        assert (hits[0].document_id, hits[0].page) == (document["id"], page)
    hits = await container.retriever.retrieve(user.id, "lighthousewolves", mode="keyword")
    assert hits[0].page == 4


async def test_an_empty_page_is_reported_too(client: httpx.AsyncClient) -> None:
    """A page with neither text nor a picture yields no text as surely as a blank scan."""
    user = await register_user(client, "empty-page")
    pdf = make_scanned_pdf([("text", ["A typed page about quinces."]), ("empty", [])])
    r = await upload(client, user, pdf)
    assert r.status_code == 200, r.text
    assert (r.json()["pages"], r.json()["pages_without_text"]) == (2, [2])


@pytest.fixture
async def one_ocr_page(
    app: FastAPI, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async for pair in started(make_settings(database_url, tmp_path, ocr_max_pages=1)):
        yield pair


async def test_pages_over_the_ocr_limit_are_reported(
    one_ocr_page: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = one_ocr_page
    user = await register_user(client, "ocr-limit")
    r = await upload(client, user, SCANNED)
    assert r.status_code == 200, r.text
    assert r.json()["pages_without_text"] == [3, 4]


async def test_a_scan_with_no_readable_text_is_refused(client: httpx.AsyncClient) -> None:
    user = await register_user(client, "ocr-blank")
    r = await upload(client, user, make_scanned_pdf([("blank", []), ("blank", [])]))
    assert r.status_code == 422, r.text
    body: dict[str, Any] = r.json()
    assert "OCR read no text" in body["detail"]
    assert (await client.get("/documents", headers=user.headers)).json() == []
