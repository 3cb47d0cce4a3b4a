"""Every document keeps its own original: several documents per user and several users, on the
local folder and on S3 (moto). Each original downloads byte-identical, deleting one leaves the
others, and ``reindex`` and crash-resume index each document from its own bytes.

Before the fix every upload of a user landed in one blob (``documents/<user>/None``): the key
was built before the document had its id."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from omnichat.app import container_of, create_app
from omnichat.blobs.base import BlobNotFound
from omnichat.cli import migrate
from omnichat.container import Container
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.models import Chunk, Document, DocumentStatus, original_key
from omnichat.documents.originals import OriginalMismatch
from omnichat.documents.reindex import reindex
from omnichat.settings import Settings
from tests.conftest import TestUser, lifespan_of, make_settings, postgres_url, register_user
from tests.s3_server import S3_TEST_BUCKET, S3_TEST_REGION
from tests.test_cli import _env, _free_port
from tests.test_documents_lifecycle import _serve

DOCUMENTS_PER_USER = 5
# Each document's one word: unrelated in meaning, so that the embedding arm of a hybrid search
# ranks a document by its own word too (random strings would leave it to chance).
WORDS = {
    "alice": ["volcano", "penguin", "saxophone", "cinnamon", "glacier"],
    "bob": ["telescope", "bicycle", "orchid", "submarine", "chessboard"],
}


@pytest.fixture
async def fresh_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of this test's own: ``reindex`` rebuilds every document in it."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'originals.db'}"
    return postgres_url(request.getfixturevalue("pg_server"), f"orig_{uuid.uuid4().hex[:8]}")


def blob_settings(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "local":
        return {}
    return {
        "blob_url": f"s3://{S3_TEST_BUCKET}/t-{uuid.uuid4().hex}",
        "s3_endpoint_url": request.getfixturevalue("s3_endpoint"),
        "s3_region": S3_TEST_REGION,
    }


async def started_app(settings: Settings) -> AsyncIterator[tuple[Container, httpx.AsyncClient]]:
    await migrate(settings)
    application = create_app(settings)
    async with lifespan_of(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield container_of(application), client


@pytest.fixture(params=["local", "s3"])
async def stack(
    request: pytest.FixtureRequest, fresh_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Container, httpx.AsyncClient]]:
    settings = make_settings(fresh_url, tmp_path / "data", **blob_settings(request.param, request))
    async for pair in started_app(settings):
        yield pair


def body_of(owner: str, number: int, word: str) -> bytes:
    return f"Note {number} of {owner}. The only word that matters here is {word}.\n".encode()


async def upload_many(
    client: httpx.AsyncClient, user: TestUser, owner: str
) -> dict[str, tuple[bytes, str]]:
    """Uploads DOCUMENTS_PER_USER text files; returns id -> (bytes, the file's unique word)."""
    uploaded = {}
    for number, word in enumerate(WORDS[owner]):
        data = body_of(owner, number, word)
        r = await client.post(
            "/upload/document",
            files={"file": (f"{owner}-{number}.txt", data, "text/plain")},
            headers=user.headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ready"
        assert r.json()["original_available"] is True
        uploaded[r.json()["id"]] = (data, word)
    return uploaded


async def assert_downloads(
    client: httpx.AsyncClient, user: TestUser, uploaded: dict[str, tuple[bytes, str]]
) -> None:
    for document_id, (data, _) in uploaded.items():
        r = await client.get(f"/documents/{document_id}/file", headers=user.headers)
        assert r.status_code == 200, r.text
        assert r.content == data


async def assert_chunks_are_their_own(
    container: Container, uploaded: dict[str, tuple[bytes, str]]
) -> None:
    words = {document_id: word for document_id, (_, word) in uploaded.items()}
    async with container.database.reader() as db:
        for document_id, word in words.items():
            texts = list(
                await db.scalars(select(Chunk.text).where(Chunk.document_id == document_id))
            )
            joined = " ".join(texts)
            assert word in joined, (document_id, texts)
            assert not [w for d, w in words.items() if d != document_id and w in joined]


async def assert_found_by_word(
    container: Container, user: TestUser, uploaded: dict[str, tuple[bytes, str]]
) -> None:
    for document_id, (_, word) in uploaded.items():
        hits = await container.retriever.retrieve(user.id, word, mode="keyword")
        assert hits
        assert hits[0].document_id == document_id


async def test_each_upload_keeps_its_own_original(
    stack: tuple[Container, httpx.AsyncClient],
) -> None:
    container, client = stack
    alice, bob = await register_user(client, "alice"), await register_user(client, "bob")
    alices = await upload_many(client, alice, "alice")
    bobs = await upload_many(client, bob, "bob")

    async with container.database.reader() as db:
        keys = dict((await db.execute(select(Document.id, Document.blob_key))).all())
    assert len(set(keys.values())) == 2 * DOCUMENTS_PER_USER
    for document_id, key in keys.items():
        owner = alice if document_id in alices else bob
        assert key == original_key(owner.id, document_id)
    await assert_downloads(client, alice, alices)
    await assert_downloads(client, bob, bobs)

    gone = next(iter(alices))
    assert (await client.delete(f"/documents/{gone}", headers=alice.headers)).status_code == 204
    del alices[gone]
    await assert_downloads(client, alice, alices)
    await assert_downloads(client, bob, bobs)
    assert (await client.get(f"/documents/{gone}/file", headers=alice.headers)).status_code == 404
    # Another user's original is a 404, like a missing one.
    other = next(iter(bobs))
    assert (await client.get(f"/documents/{other}/file", headers=alice.headers)).status_code == 404

    await assert_chunks_are_their_own(container, {**alices, **bobs})

    # reindex reads every original back and indexes it again: each from its own bytes.
    report = await reindex(container.database, container.vector_index, container.documents.ingestor)
    assert report.rebuilt == 2 * DOCUMENTS_PER_USER - 1
    assert report.kept_chunks == {}
    await assert_chunks_are_their_own(container, {**alices, **bobs})
    await assert_found_by_word(container, alice, alices)
    await assert_found_by_word(container, bob, bobs)
    # Each document's vectors are its own text's too: found by meaning alone, and by both arms.
    for user, uploaded in ((alice, alices), (bob, bobs)):
        for document_id, (_, word) in uploaded.items():
            for mode in ("vector", "hybrid"):
                hits = await container.retriever.retrieve(
                    user.id, f"Which word matters? {word}", mode=mode
                )
                assert hits[0].document_id == document_id, (mode, word)

    # Crash-resume: two documents of one user left mid-indexing are indexed again from their
    # own originals.
    interrupted = list(alices)[:2]
    async with unit_of_work(container.database.writer) as db:
        for document_id in interrupted:
            chunk_ids = list(
                await db.scalars(select(Chunk.id).where(Chunk.document_id == document_id))
            )
            await container.vector_index.store.delete(db, alice.id, chunk_ids)
            await db.execute(delete(Chunk).where(Chunk.document_id == document_id))
            await db.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(status=DocumentStatus.PROCESSING.value, attempts=1, chunk_count=0)
            )
    assert await container.documents.ingestor.resume() == 2
    for document_id in interrupted:
        for _ in range(400):
            state = await container.documents.get_document(alice.id, document_id)
            if state.status != DocumentStatus.PROCESSING.value:
                break
            await asyncio.sleep(0.05)
        assert state.status == DocumentStatus.READY.value, state.error
    await assert_chunks_are_their_own(container, {**alices, **bobs})
    await assert_found_by_word(container, alice, alices)
    await assert_downloads(client, alice, alices)
    await assert_downloads(client, bob, bobs)


async def test_resume_never_indexes_bytes_that_are_not_the_documents(
    stack: tuple[Container, httpx.AsyncClient],
) -> None:
    """A document whose stored original does not match its SHA-256 fails honestly instead of
    being indexed from someone else's text."""
    container, client = stack
    alice = await register_user(client, "alice")
    uploaded = await upload_many(client, alice, "alice")
    victim, impostor = list(uploaded)[:2]
    async with container.database.reader() as db:
        impostor_key = await db.scalar(select(Document.blob_key).where(Document.id == impostor))
    assert impostor_key is not None
    source = Path(container.settings.data_dir) / "impostor.txt"
    source.write_bytes(uploaded[impostor][0])
    await container.documents._blobs.put_file(original_key(alice.id, victim), source)
    async with unit_of_work(container.database.writer) as db:
        await db.execute(
            update(Document)
            .where(Document.id == victim)
            .values(status=DocumentStatus.PROCESSING.value, attempts=1)
        )
    assert await container.documents.ingestor.resume() == 1
    for _ in range(400):
        state = await container.documents.get_document(alice.id, victim)
        if state.status != DocumentStatus.PROCESSING.value:
            break
        await asyncio.sleep(0.05)
    assert state.status == DocumentStatus.FAILED.value
    assert state.error is not None
    assert "SHA-256" in state.error
    # Its download is cut off at the end rather than completed with another file's bytes.
    with pytest.raises(OriginalMismatch):
        await client.get(f"/documents/{victim}/file", headers=alice.headers)
    for other in [d for d in uploaded if d != victim]:
        r = await client.get(f"/documents/{other}/file", headers=alice.headers)
        assert r.content == uploaded[other][0]


# -- a data dir from before the fix: one shared blob per user ----------------------------------

SHARED = "None"  # what the old code named every upload's blob: str(document.id) before flush


async def _downgrade(url: str, revision: str) -> None:
    from alembic import command
    from sqlalchemy.engine import Connection

    from omnichat.db.engine import create_engine_from_url
    from omnichat.db.migrate import alembic_config

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    engine = create_engine_from_url(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()


async def _old_layout(settings: Settings) -> dict[str, Any]:
    """Uploads as users did, then rewrites the stores into what the old code left: every
    document of a user pointing at ``documents/<user>/None``, which holds the bytes of the
    user's last upload (or nothing, once a delete removed it), and the schema at 0005."""
    state: dict[str, Any] = {}
    async for container, client in started_app(settings):
        blobs = container.documents._blobs
        users = {name: await register_user(client, name) for name in ("alice", "bob", "carol")}
        bodies = {
            "alpha": b"Alpha body: the lighthouse keeper counts zebrafinches.\n",
            "beta": b"Beta body: the orchard grows quincegold apples.\n",
            "gamma": b"Gamma body: still being indexed when the server stopped.\n",
            "bob1": b"Bob's only note mentions marzipanwolves.\n",
            "carol1": b"Carol kept a note on glasswing moths.\n",
            "carol2": b"Carol's second note, deleted later.\n",
        }
        owners = {"alpha": "alice", "beta": "alice", "gamma": "alice"}
        owners |= {"bob1": "bob", "carol1": "carol", "carol2": "carol"}
        ids: dict[str, str] = {}
        for name in ("alpha", "gamma", "beta", "bob1", "carol1", "carol2"):  # upload order
            r = await client.post(
                "/upload/document",
                files={"file": (f"{name}.txt", bodies[name], "text/plain")},
                headers=users[owners[name]].headers,
            )
            assert r.status_code == 200, r.text
            ids[name] = r.json()["id"]
        last_upload = {"alice": "beta", "bob": "bob1", "carol": None}  # carol2 was deleted
        source = Path(settings.data_dir) / "shared-source"
        async with unit_of_work(container.database.writer) as db:
            for name, document_id in ids.items():
                user = users[owners[name]]
                await blobs.delete(original_key(user.id, document_id))
                await db.execute(
                    update(Document)
                    .where(Document.id == document_id)
                    .values(blob_key=f"documents/{user.id}/{SHARED}")
                )
            await db.execute(
                update(Document)
                .where(Document.id == ids["gamma"])
                .values(status=DocumentStatus.PROCESSING.value)
            )
            await db.execute(delete(Chunk).where(Chunk.document_id == ids["carol2"]))
            await db.execute(delete(Document).where(Document.id == ids["carol2"]))
        for owner, name in last_upload.items():
            if name is not None:
                source.write_bytes(bodies[name])
                await blobs.put_file(f"documents/{users[owner].id}/{SHARED}", source)
        state = {"users": users, "ids": ids, "bodies": bodies, "blobs": blobs}
    await _downgrade(settings.resolved_database_url, "0005")
    return state


@pytest.mark.parametrize("blob_kind", ["local", "s3"])
async def test_serve_repairs_a_data_dir_with_the_shared_blob_layout(
    blob_kind: str, fresh_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:

    blob = blob_settings(blob_kind, request)
    settings = make_settings(fresh_url, tmp_path / "data", **blob)
    state = await _old_layout(settings)
    users, ids, bodies = state["users"], state["ids"], state["bodies"]
    alice, bob, carol = users["alice"], users["bob"], users["carol"]

    env = _env(
        settings.data_dir,
        OMNICHAT_DATABASE_URL=fresh_url,
        OMNICHAT_SECRET_KEY=settings.signing_key(),
        **{f"OMNICHAT_{key.upper()}": str(value) for key, value in blob.items()},
    )
    port = _free_port()
    process = await asyncio.to_thread(_serve, env, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            async def document(user: TestUser, name: str) -> dict[str, Any]:
                r = await client.get(f"/documents/{ids[name]}", headers=user.headers)
                assert r.status_code == 200, r.text
                return dict(r.json())

            async def download(user: TestUser, name: str) -> httpx.Response:
                return await client.get(f"/documents/{ids[name]}/file", headers=user.headers)

            # The shared blob held beta's bytes: beta keeps them, under its own key.
            assert (await download(alice, "beta")).content == bodies["beta"]
            assert (await document(alice, "beta"))["original_available"] is True
            assert (await download(bob, "bob1")).content == bodies["bob1"]
            # Alpha's bytes were overwritten: marked honestly, never served beta's bytes.
            for user, name in ((alice, "alpha"), (carol, "carol1")):
                r = await download(user, name)
                assert r.status_code == 410
                assert "not available" in r.json()["detail"]
                state_now = await document(user, name)
                assert state_now["original_available"] is False
                assert state_now["status"] == "ready"
            # Still searchable: its chunks were made from its own upload.
            r = await client.post(
                "/inference/query",
                json={"query": "Who counts zebrafinches?", "enable_rag": True},
                headers=alice.headers,
            )
            assert r.status_code == 200, r.text
            assert ids["alpha"] in [s["document_id"] for s in r.json()["sources"]]
            # The one left processing cannot be indexed from someone else's bytes.
            gamma = await document(alice, "gamma")
            assert gamma["status"] == "failed"
            assert gamma["original_available"] is False
    finally:
        process.terminate()
        process.wait(timeout=30)

    blobs = state["blobs"]
    for user in users.values():
        with pytest.raises(BlobNotFound):
            await blobs.read(f"documents/{user.id}/{SHARED}")
    assert await blobs.read(original_key(alice.id, ids["beta"])) == bodies["beta"]

    # reindex rebuilds the documents that have their originals and names the others, whose
    # stored chunks it keeps (re-embedded): they stay searchable.
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "omnichat", "reindex"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    warnings = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    kept = {w["document_id"] for w in warnings if w["level"] == "warning" and "document_id" in w}
    assert kept == {ids["alpha"], ids["carol1"]}
    async for container, _ in started_app(settings):
        hits = await container.retriever.retrieve(alice.id, "zebrafinches", mode="vector")
        assert hits[0].document_id == ids["alpha"]
        hits = await container.retriever.retrieve(alice.id, "quincegold apples", mode="keyword")
        assert hits[0].document_id == ids["beta"]
