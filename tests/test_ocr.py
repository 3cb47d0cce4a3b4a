"""Scanned PDFs are read by OCR, offline, page numbers kept: only the pages without a text layer
are OCR'd, a page that yields no text is reported (``pages_without_text``), and the OCR limits
(pages, time) are honoured."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from omnichat.container import Container
from omnichat.documents.extraction import Extractor
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage
from omnichat.ratelimit import TooManyRequests
from omnichat.settings import Settings
from tests.conftest import TestUser, container_of, make_settings, register_user
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


@pytest.fixture
async def two_ocr_pages_an_hour(
    app: FastAPI, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async for pair in started(make_settings(database_url, tmp_path, ocr_pages_per_hour=2)):
        yield pair


async def settled(client: httpx.AsyncClient, user: TestUser, document_id: str) -> dict[str, Any]:
    """The document once it is no longer ``processing``."""
    while True:
        state: dict[str, Any] = (
            await client.get(f"/documents/{document_id}", headers=user.headers)
        ).json()
        if state["status"] != "processing":
            return state
        await asyncio.sleep(0.05)


async def test_ocr_pages_past_a_users_hourly_allowance_are_not_read(
    two_ocr_pages_an_hour: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    """OMNICHAT_OCR_PAGES_PER_HOUR is per user: one user's scans past it are left unread (or a
    scan-only document fails, saying when the allowance frees), while another user's are read."""
    app, client = two_ocr_pages_an_hour
    container = container_of(app)
    user = await register_user(client, "ocr-hourly")
    first = make_scanned_pdf(
        [("scan", ["Minutes of the otterbrook council"]), ("scan", ["Signed by plumcastle"])]
    )
    r = await upload(client, user, first)
    assert r.status_code == 200, r.text
    assert r.json()["pages_without_text"] == []

    second = make_scanned_pdf(
        [("text", ["A typed cover about walnut harvests."]), ("scan", ["The cinderhollow mill"])]
    )
    r = await upload(client, user, second)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["pages_without_text"]) == ("ready", [2])
    assert await container.retriever.retrieve(user.id, "walnut", mode="keyword")
    assert not await container.retriever.retrieve(user.id, "cinderhollow", mode="keyword")

    scan_only = make_scanned_pdf([("scan", ["Only a scan of the ravenmoor ledger"])])
    r = await upload(client, user, scan_only)
    assert r.status_code == 429, r.text
    assert "OCR allowance" in r.json()["detail"]
    assert 0 < int(r.headers["Retry-After"]) <= 3600
    r = await client.post(
        "/upload/document",
        params={"background": "true"},
        files={"file": ("scan.pdf", scan_only, "application/pdf")},
        headers=user.headers,
    )
    assert r.status_code == 202, r.text
    state = await settled(client, user, r.json()["id"])
    assert state["status"] == "failed"
    assert "OCR allowance (2 pages per hour) is used up" in state["error"]
    assert "retry in" in state["error"]

    other = await register_user(client, "ocr-hourly-other")
    r = await upload(client, other, make_scanned_pdf([("scan", ["Report of saffronquay"])]))
    assert r.status_code == 200, r.text
    assert r.json()["pages_without_text"] == []
    hits = await container.retriever.retrieve(other.id, "saffronquay", mode="keyword")
    assert hits
    assert hits[0].document_id == r.json()["id"]


async def test_the_ocr_allowance_is_shared_by_workers_through_redis(
    redis_url: str, tmp_path: Path
) -> None:
    """Two server processes' extractors on one Redis: a page one of them read counts in the
    other's allowance."""
    settings = Settings.model_validate({"redis_url": redis_url, "ocr_pages_per_hour": 1})
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_scanned_pdf([("scan", ["The heronvale gazette"])]))
    scanned = ExtractedDocument(DocumentKind.PDF, [ExtractedPage(1, "")], ocr_pages=(1,))
    owner = f"user-{uuid.uuid4().hex}"
    first, second = Extractor(settings), Extractor(settings)
    try:
        read = await first.read_scanned_pages(path, scanned, owner)
        assert "heronvale" in read.pages[0].text
        with pytest.raises(TooManyRequests, match="OCR allowance"):
            await second.read_scanned_pages(path, scanned, owner)
        other = await second.read_scanned_pages(path, scanned, f"{owner}-other")
        assert "heronvale" in other.pages[0].text
    finally:
        first.close()
        second.close()
