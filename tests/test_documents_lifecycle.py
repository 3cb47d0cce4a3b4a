"""Documents beyond the default set-up: S3 and Pinecone as the stores, limits and quotas, a
server killed mid-ingest, an embedder change and ``omnichat reindex``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from omnichat.app import container_of, create_app
from omnichat.container import Container
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.models import Document, DocumentStatus, original_key
from omnichat.documents.reindex import reindex
from omnichat.errors import ServiceUnavailable
from omnichat.rag.index import VectorIndex
from omnichat.settings import Settings
from tests.conftest import (
    PASSWORD,
    TestUser,
    lifespan_of,
    make_settings,
    register_user,
    unique_email,
)
from tests.docs_factory import make_pdf
from tests.fakes.pinecone_fake import PineconeFake
from tests.s3_server import S3_TEST_BUCKET, S3_TEST_REGION

PINECONE_KEY = "pcsk_test_lifecycle_0123456789"


async def upload(client: httpx.AsyncClient, user: TestUser, data: bytes, **params: str) -> Any:
    return await client.post(
        "/upload/document",
        files={"file": ("doc.pdf", data, "application/pdf")},
        params=params or None,
        headers=user.headers,
    )


async def started(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    async with lifespan_of(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client


# -- S3 originals and Pinecone vectors ------------------------------------------------------


@pytest.fixture(scope="module")
def pinecone() -> Iterator[PineconeFake]:
    with PineconeFake(api_key=PINECONE_KEY, index_name="omnichat", dimension=384) as fake:
        yield fake


@pytest.fixture
async def scaled(
    app: FastAPI, database_url: str, s3_endpoint: str, pinecone: PineconeFake, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = make_settings(
        database_url,
        tmp_path,
        blob_url=f"s3://{S3_TEST_BUCKET}/originals",
        s3_endpoint_url=s3_endpoint,
        s3_region=S3_TEST_REGION,
        vector_store="pinecone",
        pinecone_api_key=PINECONE_KEY,
        pinecone_host=pinecone.url,
    )
    async for pair in started(settings):
        yield pair


def s3_keys(endpoint: str, prefix: str) -> list[str]:
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=S3_TEST_REGION)
    listed = client.list_objects_v2(Bucket=S3_TEST_BUCKET, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


async def test_s3_and_pinecone_hold_originals_and_vectors(
    scaled: tuple[FastAPI, httpx.AsyncClient], s3_endpoint: str
) -> None:
    application, client = scaled
    container = container_of(application)
    alice, bob = await register_user(client, "alice"), await register_user(client, "bob")
    data = make_pdf(["Intro page.", "The vault code is written on the orange lighthouse."])
    r = await upload(client, alice, data)
    assert r.status_code == 200, r.text
    document = r.json()
    assert document["status"] == "ready"
    async with container.database.reader() as db:
        owner, key = (
            await db.execute(
                select(Document.user_id, Document.blob_key).where(Document.id == document["id"])
            )
        ).one()
    assert s3_keys(s3_endpoint, f"originals/{key}") == [f"originals/{key}"]
    download = await client.get(f"/documents/{document['id']}/file", headers=alice.headers)
    assert download.content == data

    question = "Where is the vault code written?"
    found = await container.retriever.retrieve(owner, question, mode="vector")
    assert found[0].document_id == document["id"]
    assert found[0].page == 2
    bob_id = (await client.get("/auth/me", headers=bob.headers)).json()["id"]
    assert await container.retriever.retrieve(bob_id, question, mode="vector") == []

    assert (
        await client.delete(f"/documents/{document['id']}", headers=alice.headers)
    ).status_code == 204
    assert s3_keys(s3_endpoint, f"originals/{key}") == []
    async with container.database.reader() as db:
        hits = await container.vector_index.store.search(db, owner, [1.0] + [0.0] * 383, 50)
    assert hits == []


# -- limits ------------------------------------------------------------------------------------


@pytest.fixture
async def limited(
    app: FastAPI, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = make_settings(
        database_url,
        tmp_path,
        max_upload_bytes=20_000,
        max_documents_per_user=3,
        max_document_bytes_per_user=30_000,
    )
    async for pair in started(settings):
        yield pair


async def test_upload_size_and_quotas(limited: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = limited
    user = await register_user(client, "docs")
    # Over the file limit but inside the multipart allowance: refused while copying.
    r = await upload(client, user, b"x" * 20_001)
    assert r.status_code == 413
    assert "20000 bytes" in r.json()["detail"]
    # Far over: refused by the body limit as it streams in.
    r = await upload(client, user, b"x" * 200_000)
    assert r.status_code == 413
    small = make_pdf(["Small."])
    text_file = ("Some words. " * 1500).encode()
    assert len(text_file) < 20_000
    assert (await upload(client, user, small)).status_code == 200
    assert (await upload(client, user, text_file)).status_code == 200
    r = await upload(client, user, text_file)
    assert r.status_code == 413  # 30,000 bytes per user in all
    assert "quota" in r.json()["detail"].lower()
    assert (await upload(client, user, small)).status_code == 200
    r = await upload(client, user, small)
    assert r.status_code == 409  # three documents per user
    assert "limit" in r.json()["detail"].lower()
    assert len((await client.get("/documents", headers=user.headers)).json()) == 3


# -- crash and resume --------------------------------------------------------------------------


async def test_documents_left_processing_resume_or_fail(
    container: Container, alice: TestUser
) -> None:
    data = make_pdf(["Resumed after a crash: the kettle is blue."])
    source = Path(container.settings.data_dir) / "resume.pdf"
    source.write_bytes(data)
    interrupted, hopeless = (
        Document(
            user_id=alice.id,
            filename=filename,
            kind="pdf",
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            blob_key="",
            status=DocumentStatus.PROCESSING.value,
            attempts=attempts,
        )
        for filename, attempts in (("resume.pdf", 1), ("again.pdf", 3))
    )
    for document in (interrupted, hopeless):
        document.blob_key = original_key(alice.id, document.id)  # the id is there from birth
        await container.documents._blobs.put_file(document.blob_key, source)
    async with unit_of_work(container.database.writer) as db:
        db.add_all([interrupted, hopeless])
    assert await container.documents.ingestor.resume() >= 1
    for _ in range(200):
        state = await container.documents.get_document(alice.id, interrupted.id)
        if state.status != DocumentStatus.PROCESSING.value:
            break
        await asyncio.sleep(0.05)
    assert state.status == DocumentStatus.READY.value
    assert state.attempts == 2
    found = await container.retriever.retrieve(alice.id, "what colour is the kettle?")
    assert found[0].document_id == interrupted.id
    failed = await container.documents.get_document(alice.id, hopeless.id)
    assert failed.status == DocumentStatus.FAILED.value
    assert failed.error is not None
    assert "interrupted" in failed.error


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "omnichat", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not start")


def test_kill_9_mid_ingest_then_restart_finishes_the_document(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    from tests.conftest import postgres_url
    from tests.test_cli import _env, _free_port

    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    else:
        url = postgres_url(request.getfixturevalue("pg_server"), f"crash_{os.getpid()}")
    env = _env(tmp_path / "data", OMNICHAT_DATABASE_URL=url)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # Enough text that embedding takes a few seconds on two cores.
    pages = [
        f"Page {n}. " + "The archive keeps many records of old ships. " * 60 for n in range(40)
    ]
    process = _serve(env, port)
    try:
        email = unique_email("crash")
        httpx.post(f"{base}/auth/register", json={"email": email, "password": PASSWORD})
        token = httpx.post(
            f"{base}/auth/login", json={"email": email, "password": PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        r = httpx.post(
            f"{base}/upload/document",
            params={"background": "true"},
            files={"file": ("ships.pdf", make_pdf(pages), "application/pdf")},
            headers=headers,
            timeout=60,
        )
        assert r.status_code == 202, r.text
        document_id = r.json()["id"]
        time.sleep(0.3)
        assert httpx.get(f"{base}/documents/{document_id}", headers=headers).json()["status"] == (
            "processing"
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    process = _serve(env, port)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = httpx.get(f"{base}/documents/{document_id}", headers=headers).json()
            if state["status"] != "processing":
                break
            time.sleep(0.2)
        assert state["status"] == "ready", state
        assert state["pages"] == 40
        assert state["chunks"] >= 40
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- embedder identity -------------------------------------------------------------------------


class _OtherEmbedder:
    name = "openai:text-embedding-3-small"
    dimension = 1536

    async def embed_documents(self, texts: Any) -> list[list[float]]:
        raise AssertionError("not used")

    async def embed_query(self, text: str) -> list[float]:
        raise AssertionError("not used")


async def test_an_embedder_change_is_refused_until_reindex(container: Container) -> None:
    index = VectorIndex(container.database, container.vector_index.store, _OtherEmbedder())
    await index.start()
    assert index.mismatch is not None
    assert "omnichat reindex" in index.mismatch
    with pytest.raises(ServiceUnavailable):
        index.check_usable()
    container.vector_index.check_usable()  # the configured one still matches


async def test_reindex_rebuilds_vectors_and_keeps_answers(
    container: Container, client: httpx.AsyncClient, alice: TestUser
) -> None:
    r = await upload(client, alice, make_pdf(["Reindexing keeps the marmalade recipe findable."]))
    document_id = r.json()["id"]
    report = await reindex(container.database, container.vector_index, container.documents.ingestor)
    assert report.rebuilt >= 1
    found = await container.retriever.retrieve(alice.id, "marmalade recipe", mode="vector")
    assert found[0].document_id == document_id
