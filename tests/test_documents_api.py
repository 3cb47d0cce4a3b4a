"""Seed 003's upload and the documents endpoints, through the app on SQLite and PostgreSQL:
real PDFs and DOCX made at test time, the real extractor, chunker and local MiniLM embedder,
the vector store of each backend."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from omnichat.blobs.base import BlobNotFound
from omnichat.blobs.factory import build_blob_store
from omnichat.container import Container
from omnichat.documents.models import Chunk, Document
from tests.conftest import TestUser, UserFactory
from tests.docs_factory import (
    EXE_HEADER,
    make_docx,
    make_encrypted_pdf,
    make_image_only_pdf,
    make_pdf,
    make_png,
    make_structured_docx,
    make_zip_bomb_docx,
)

PDF_PAGES = [
    "Chapter one. The lighthouse keeper counted ships every night and wrote them down.",
    "Chapter two. The secret ingredient of the harbour soup is smoked paprika from Murcia.",
]


async def upload(
    client: httpx.AsyncClient,
    user: TestUser,
    data: bytes,
    filename: str = "report.pdf",
    content_type: str = "application/octet-stream",
    **form: Any,
) -> httpx.Response:
    params = {"background": "true"} if form.pop("background", False) else None
    return await client.post(
        "/upload/document",
        files={"file": (filename, data, content_type)},
        data=form or None,
        params=params,
        headers=user.headers,
    )


async def chunk_count(container: Container, document_id: str) -> int:
    async with container.database.reader() as db:
        return int(
            await db.scalar(select(func.count(Chunk.id)).where(Chunk.document_id == document_id))
            or 0
        )


async def vector_count(container: Container, document_id: str) -> int:
    table = "chunk_vectors" if container.settings.is_sqlite else "chunk_embeddings"
    async with container.database.reader() as db:
        ids = list(await db.scalars(select(Chunk.id).where(Chunk.document_id == document_id)))
        if not ids:
            return 0
        rows = await db.execute(
            text(f"SELECT count(*) FROM {table} WHERE chunk_id IN ({','.join(map(str, ids))})")  # noqa: S608
        )
        return int(rows.scalar_one())


async def test_pdf_upload_is_indexed_before_the_answer(
    client: httpx.AsyncClient, alice: TestUser, container: Container
) -> None:
    data = make_pdf(PDF_PAGES)
    r = await upload(client, alice, data, "harbour.pdf", "application/pdf")
    assert r.status_code == 200, r.text
    document = r.json()
    assert document["status"] == "ready"
    assert document["kind"] == "pdf"
    assert document["pages"] == 2
    assert document["chunks"] >= 2  # chunks never span pages
    assert document["filename"] == "harbour.pdf"
    assert document["size_bytes"] == len(data)
    assert document["error"] is None
    assert await chunk_count(container, document["id"]) == document["chunks"]
    assert await vector_count(container, document["id"]) == document["chunks"]

    listed = (await client.get("/documents", headers=alice.headers)).json()
    assert [d["id"] for d in listed] == [document["id"]]
    one = await client.get(f"/documents/{document['id']}", headers=alice.headers)
    assert one.json() == document


async def test_download_returns_the_original_with_safe_headers(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    data = make_pdf(["Download me."])
    name = '../../etc/pa"ss\r\nwd;ü.pdf'
    document = (await upload(client, alice, data, name)).json()
    assert document["filename"] == "passwd;ü.pdf"  # last component, no quotes or controls
    r = await client.get(f"/documents/{document['id']}/file", headers=alice.headers)
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"] == "sandbox"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="passwd_')
    assert "filename*=UTF-8''passwd%3B%C3%BC.pdf" in disposition
    assert "\r" not in disposition
    assert "\n" not in disposition
    inline = await client.get(
        f"/documents/{document['id']}/file", params={"inline": "true"}, headers=alice.headers
    )
    assert inline.headers["content-disposition"].startswith("inline;")


@pytest.mark.parametrize(
    ("name", "data", "kind", "expected_text"),
    [
        ("notes.docx", make_structured_docx(), "docx", "Quarterly Report"),
        ("plain.txt", b"Plain text about otters.\n", "txt", "otters"),
        ("readme.md", b"# Title\n\nMarkdown about beavers.\n", "md", "beavers"),
        ("misnamed.docx", make_pdf(["A PDF wearing a docx name."]), "pdf", "wearing"),
    ],
)
async def test_other_kinds_are_sniffed_from_content(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    container: Container,
    name: str,
    data: bytes,
    kind: str,
    expected_text: str,
) -> None:
    user = await make_user()
    r = await upload(client, user, data, name)
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == kind
    async with container.database.reader() as db:
        texts = list(
            await db.scalars(select(Chunk.text).where(Chunk.document_id == r.json()["id"]))
        )
    assert any(expected_text in t for t in texts)


async def test_background_upload_answers_202_then_becomes_ready(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    r = await upload(client, alice, make_docx(["Background indexing works."]), background=True)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "processing"
    for _ in range(200):
        state = (await client.get(f"/documents/{r.json()['id']}", headers=alice.headers)).json()
        if state["status"] != "processing":
            break
        await asyncio.sleep(0.05)
    assert state["status"] == "ready"
    assert state["chunks"] >= 1


@pytest.mark.parametrize(
    ("name", "data", "status", "phrase"),
    [
        ("secret.pdf", make_encrypted_pdf(), 422, "encrypted"),
        ("scan.pdf", make_image_only_pdf(), 422, "text"),
        ("photo.pdf", make_png(), 415, "PDF"),
        ("setup.pdf", EXE_HEADER, 415, "PDF"),
        ("empty.pdf", b"", 422, "empty"),
        ("broken.pdf", make_pdf(["x"])[:200], 422, "PDF"),
        ("zip.docx", b"PK\x03\x04" + b"\x00" * 100, 4, ""),
    ],
)
async def test_unusable_files_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    container: Container,
    name: str,
    data: bytes,
    status: int,
    phrase: str,
) -> None:
    user = await make_user()
    r = await upload(client, user, data, name)
    if status == 4:
        assert 400 <= r.status_code < 500, r.text
    else:
        assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str)
    assert phrase.lower() in detail.lower()
    assert (await client.get("/documents", headers=user.headers)).json() == []
    async with container.database.reader() as db:
        assert await db.scalar(select(func.count()).where(Document.user_id == user.id)) == 0
    blob_root = Path(container.settings.resolved_blob_url.removeprefix("file://"))
    assert not (blob_root / "documents" / user.id).exists()


async def test_zip_bomb_docx_is_refused_before_unpacking(
    client: httpx.AsyncClient, alice: TestUser, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.docx"
    make_zip_bomb_docx(bomb, zero_bytes=64 * 1024 * 1024)
    assert bomb.stat().st_size < 1024 * 1024
    r = await upload(client, alice, bomb.read_bytes(), "bomb.docx")
    assert r.status_code == 413, r.text
    assert (await client.get("/documents", headers=alice.headers)).json() == []


async def test_upload_needs_a_file_and_auth(client: httpx.AsyncClient, alice: TestUser) -> None:
    r = await client.post("/upload/document", headers=alice.headers)
    assert r.status_code == 422
    r = await client.post(
        "/upload/document", files={"file": ("a.txt", b"hello there", "text/plain")}
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("parts", "named"),
    [
        # Two documents in one request: the second would be dropped without a word.
        (
            [
                ("file", ("one.txt", b"The first note is about herons.", "text/plain")),
                ("file", ("two.txt", b"The second note is about foxes.", "text/plain")),
            ],
            "file",
        ),
        (
            [
                ("file", ("one.txt", b"A note about herons.", "text/plain")),
                ("files", ("two.txt", b"A note about foxes.", "text/plain")),
            ],
            "files",
        ),
        (
            [
                ("file", ("one.txt", b"A note about herons.", "text/plain")),
                ("purpose", (None, b"assistants")),
            ],
            "purpose",
        ),
    ],
)
async def test_parts_the_upload_would_not_read_are_refused(
    client: httpx.AsyncClient, alice: TestUser, parts: list[Any], named: str
) -> None:
    r = await client.post("/upload/document", files=parts, headers=alice.headers)
    assert r.status_code == 400, r.text
    assert f"'{named}'" in r.json()["detail"]
    assert (await client.get("/documents", headers=alice.headers)).json() == []


async def test_documents_are_owner_only(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    document = (await upload(client, alice, make_pdf(["Alice's private page."]))).json()
    path = f"/documents/{document['id']}"
    for method, url in [("GET", path), ("GET", f"{path}/file"), ("DELETE", path)]:
        r = await client.request(method, url, headers=bob.headers)
        assert r.status_code == 404, (method, url)
        assert r.json() == {"detail": "Document not found"}
    assert (await client.get("/documents", headers=bob.headers)).json() == []
    assert (await client.get(path, headers=alice.headers)).json()["status"] == "ready"


async def test_upload_into_a_session_must_be_the_callers(
    client: httpx.AsyncClient, alice: TestUser, bob: TestUser
) -> None:
    session = (await client.post("/sessions", json={"title": "docs"}, headers=alice.headers)).json()
    r = await upload(client, bob, b"Bob's notes.", "n.txt", session_id=session["id"])
    assert r.status_code == 404
    r = await upload(client, alice, b"Alice's notes.", "n.txt", session_id=session["id"])
    assert r.status_code == 200
    assert r.json()["session_id"] == session["id"]


async def test_delete_removes_chunks_vectors_and_the_original(
    client: httpx.AsyncClient, alice: TestUser, container: Container
) -> None:
    document = (await upload(client, alice, make_pdf(PDF_PAGES))).json()
    async with container.database.reader() as db:
        key = await db.scalar(select(Document.blob_key).where(Document.id == document["id"]))
    assert key is not None
    blobs = build_blob_store(container.settings)
    assert await blobs.read(key) == make_pdf(PDF_PAGES)
    assert await vector_count(container, document["id"]) > 0

    r = await client.delete(f"/documents/{document['id']}", headers=alice.headers)
    assert r.status_code == 204
    assert await chunk_count(container, document["id"]) == 0
    assert await vector_count(container, document["id"]) == 0
    with pytest.raises(BlobNotFound):
        await blobs.read(key)
    assert (
        await client.get(f"/documents/{document['id']}", headers=alice.headers)
    ).status_code == 404
    chunks = await container.retriever.retrieve(alice.id, "secret ingredient harbour soup")
    assert all(chunk.document_id != document["id"] for chunk in chunks)


async def test_retrieval_finds_the_page_and_never_crosses_users(
    client: httpx.AsyncClient, make_user: UserFactory, container: Container
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    mine = (await upload(client, alice, make_pdf(PDF_PAGES), "harbour.pdf")).json()
    bobs = (
        await upload(client, bob, make_pdf(["Bob writes about mountain trains."]), "bob.pdf")
    ).json()
    question = "What is the secret ingredient of the harbour soup?"
    for mode in ("hybrid", "vector", "keyword"):
        found = await container.retriever.retrieve(alice.id, question, mode=mode)
        assert found, mode
        assert found[0].document_id == mine["id"]
        assert found[0].page == 2
        assert "paprika" in found[0].text
        theirs = await container.retriever.retrieve(bob.id, question, mode=mode)
        assert {chunk.document_id for chunk in theirs} <= {bobs["id"]}, mode
