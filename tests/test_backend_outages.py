"""Outages of the blob store (a real S3 protocol server, stopped and started again under the
running app) and of Pinecone (answering 500): uploads and grounded questions get a 503 naming
the backend, with ``Retry-After``, nothing is half-stored, ``/readyz`` names the failing backend,
and service comes back without a restart."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from moto.server import ThreadedMotoServer

from omnichat.app import create_app
from omnichat.settings import Settings
from tests.conftest import (
    LLM_TEST_SETTINGS,
    PASSWORD,
    TestUser,
    lifespan_of,
    make_settings,
    provider_settings,
    register_user,
)
from tests.docs_factory import make_pdf
from tests.fakes import FakeProviderServer, Reply
from tests.fakes.pinecone_fake import PineconeFake
from tests.s3_server import S3_TEST_BUCKET, S3_TEST_REGION
from tests.test_outages import _assert_unavailable, _until_ready

PINECONE_KEY = "pcsk_test_outage_0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_s3(s3_endpoint: str) -> Iterator[tuple[str, ThreadedMotoServer]]:
    """An S3 server of this test's own on a fixed port (it is stopped and started again); the
    bucket is the session's (moto keeps its data in the process, across restarts)."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.stop()


async def _started(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    async with lifespan_of(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client


async def _upload(client: httpx.AsyncClient, user: TestUser, text: str) -> httpx.Response:
    return await client.post(
        "/upload/document",
        files={"file": ("notes.pdf", make_pdf([text]), "application/pdf")},
        headers=user.headers,
    )


async def _blob_key(settings: Settings, document_id: str) -> str:
    from sqlalchemy import select

    from omnichat.db.engine import create_database
    from omnichat.documents.models import Document

    database = create_database(settings)
    try:
        async with database.reader() as db:
            key = await db.scalar(select(Document.blob_key).where(Document.id == document_id))
    finally:
        await database.dispose()
    assert key is not None
    return f"{settings.blob_url.split('/', 3)[3]}/{key}" if settings.blob_url else key


def _s3_keys(endpoint: str, key: str) -> list[str]:
    import boto3

    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=S3_TEST_REGION)
    listed = client.list_objects_v2(Bucket=S3_TEST_BUCKET, Prefix=key)
    return [item["Key"] for item in listed.get("Contents", [])]


def _failing(body: dict[str, object]) -> list[str]:
    backends = body["backends"]
    assert isinstance(backends, list)
    return [b["name"] for b in backends if not b["ok"]]


async def test_s3_outage_answers_503_naming_the_blob_store_and_recovers(
    app: object,  # migrations applied
    database_url: str,
    own_s3: tuple[str, ThreadedMotoServer],
    tmp_path: Path,
) -> None:
    endpoint, server = own_s3
    settings = make_settings(
        database_url,
        tmp_path,
        blob_url=f"s3://{S3_TEST_BUCKET}/outage-{uuid.uuid4().hex[:8]}",
        s3_endpoint_url=endpoint,
        s3_region=S3_TEST_REGION,
    )
    async for _, client in _started(settings):
        alice, bob = await register_user(client, "s3-alice"), await register_user(client, "s3-b")
        first = await _upload(client, alice, "Kept before the outage: the teal heron.")
        assert first.status_code == 200, first.text
        assert (await client.get("/readyz")).status_code == 200

        server.stop()
        for user in (alice, bob):
            refused = await _upload(client, user, "Written during the outage: the amber fox.")
            _assert_unavailable(refused)
            assert "document store" in refused.json()["detail"]
            listed = (await client.get("/documents", headers=user.headers)).json()
            # Nothing half-stored: only what was there before.
            assert len(listed) == (1 if user is alice else 0), listed
        ready = await client.get("/readyz")
        _assert_unavailable(ready)
        assert _failing(ready.json()) == ["blob store"]
        assert "blob store" in ready.json()["detail"]
        download = await client.get(f"/documents/{first.json()['id']}/file", headers=alice.headers)
        _assert_unavailable(download)
        # Deletes refuse rather than leave originals nobody would delete (nothing is removed).
        refused = await client.delete(f"/documents/{first.json()['id']}", headers=alice.headers)
        _assert_unavailable(refused)
        refused = await client.request(
            "DELETE", "/auth/me", json={"current_password": PASSWORD}, headers=bob.headers
        )
        _assert_unavailable(refused)
        assert (await client.get("/auth/me", headers=bob.headers)).status_code == 200
        assert len((await client.get("/documents", headers=alice.headers)).json()) == 1

        server.start()  # same port, same data
        await _until_ready(client)
        again = await _upload(client, bob, "After the outage: the amber fox.")
        assert again.status_code == 200, again.text
        download = await client.get(f"/documents/{first.json()['id']}/file", headers=alice.headers)
        assert download.status_code == 200
        key = await _blob_key(settings, first.json()["id"])
        assert _s3_keys(endpoint, key)
        deleted = await client.delete(f"/documents/{first.json()['id']}", headers=alice.headers)
        assert deleted.status_code == 204
        assert _s3_keys(endpoint, key) == []  # the original went with it


async def test_pinecone_answering_500_is_a_503_naming_the_vector_store(
    app: object,
    database_url: str,
    fake_provider: FakeProviderServer,
    tmp_path: Path,
) -> None:
    with PineconeFake(api_key=PINECONE_KEY, index_name="omnichat", dimension=384) as pinecone:
        settings = make_settings(
            database_url,
            tmp_path,
            vector_store="pinecone",
            pinecone_api_key=PINECONE_KEY,
            pinecone_host=pinecone.url,
            **provider_settings(fake_provider),
            **LLM_TEST_SETTINGS,
        )
        async for _, client in _started(settings):
            user = await register_user(client, "pc-outage")
            kept = await _upload(client, user, "The vault code is under the orange lighthouse.")
            assert kept.status_code == 200, kept.text
            assert (await client.get("/readyz")).status_code == 200

            pinecone.failing_status = 500
            ready = await client.get("/readyz")
            _assert_unavailable(ready)
            assert _failing(ready.json()) == ["vector store (pinecone)"]
            assert PINECONE_KEY not in ready.text
            asked = await client.post(
                "/inference/query",
                json={"query": "Where is the vault code?", "model": "gpt", "enable_rag": True},
                headers=user.headers,
            )
            _assert_unavailable(asked)
            assert "vector store" in asked.json()["detail"]
            assert fake_provider.generation_count == 0  # refused before any model call

            pinecone.failing_status = None
            await _until_ready(client)
            fake_provider.script(Reply("Under the orange lighthouse [1]."))
            answered = await client.post(
                "/inference/query",
                json={"query": "Where is the vault code?", "model": "gpt", "enable_rag": True},
                headers=user.headers,
            )
            assert answered.status_code == 200, answered.text
            assert answered.json()["sources"]
