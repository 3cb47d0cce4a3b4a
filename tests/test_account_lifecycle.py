"""Account lifecycle: deleting an account removes the user and everything they own from every
store (rows, vectors, keyword index, originals) in one go, leaving every other user's data
as it was; changing the email keeps addresses unique and ends the user's other logins."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import func, select, text

from omnichat.apikeys.models import ApiKey
from omnichat.auth.models import RefreshToken, TokenFamily, User
from omnichat.chats.models import ChatSession, Message
from omnichat.container import Container
from omnichat.documents.ingest import DELETED_WHILE_INDEXING
from omnichat.documents.models import Chunk, Document
from omnichat.rag.keyword import owner_token
from tests.conftest import PASSWORD, TestUser, make_settings, register_user
from tests.fakes.pinecone_fake import PineconeFake
from tests.s3_server import S3_TEST_BUCKET, S3_TEST_REGION
from tests.test_document_originals import started_app

PINECONE_KEY = "pcsk_test_accounts_0123456789"
ACCOUNT = {"current_password": PASSWORD}


# -- the stacks: the embedded default, and S3 + Pinecone -----------------------------------------


@pytest.fixture(scope="module")
def pinecone() -> Iterator[PineconeFake]:
    with PineconeFake(api_key=PINECONE_KEY, index_name="omnichat", dimension=384) as fake:
        yield fake


@pytest.fixture(params=["default", "s3+pinecone"])
async def stack(
    request: pytest.FixtureRequest, database_url: str, app: Any, tmp_path: Path
) -> AsyncIterator[tuple[Container, httpx.AsyncClient, Any]]:
    """(container, client, probe): ``probe(user_id)`` counts what the stores outside the
    database tables hold for the user."""
    overrides: dict[str, Any] = {}
    probe: Any
    if request.param == "default":

        def probe(user_id: str) -> dict[str, int]:
            folder = tmp_path / "data" / "blobs" / "documents" / user_id
            return {"blobs": len(list(folder.iterdir())) if folder.exists() else 0}

    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        fake: PineconeFake = request.getfixturevalue("pinecone")
        prefix = f"t-{uuid.uuid4().hex}"
        overrides = {
            "blob_url": f"s3://{S3_TEST_BUCKET}/{prefix}",
            "s3_endpoint_url": endpoint,
            "s3_region": S3_TEST_REGION,
            "vector_store": "pinecone",
            "pinecone_api_key": PINECONE_KEY,
            "pinecone_host": fake.url,
        }
        s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=S3_TEST_REGION)

        def probe(user_id: str) -> dict[str, int]:
            listed = s3.list_objects_v2(
                Bucket=S3_TEST_BUCKET, Prefix=f"{prefix}/documents/{user_id}/"
            )
            return {
                "blobs": len(listed.get("Contents", [])),
                "pinecone vectors": len(fake.namespaces.get(user_id, {})),
            }

    settings = make_settings(database_url, tmp_path / "data", **overrides)
    async for container, client in started_app(settings):
        yield container, client, probe


async def count_owned(container: Container, user_id: str) -> dict[str, int]:
    """Every row of the user, table by table, and their vectors and keyword entries."""
    owned = {
        "users": User.id == user_id,
        "chat_sessions": ChatSession.user_id == user_id,
        "messages": Message.user_id == user_id,
        "documents": Document.user_id == user_id,
        "chunks": Chunk.user_id == user_id,
        "api_keys": ApiKey.user_id == user_id,
        "token_families": TokenFamily.user_id == user_id,
    }
    counts: dict[str, int] = {}
    async with container.database.reader() as db:
        for name, where in owned.items():
            table = where.left.table  # type: ignore[attr-defined]
            counts[name] = int(
                await db.scalar(select(func.count()).select_from(table).where(where))
            )
        families = select(TokenFamily.id).where(TokenFamily.user_id == user_id)
        counts["refresh_tokens"] = int(
            await db.scalar(
                select(func.count())
                .select_from(RefreshToken)
                .where(RefreshToken.family_id.in_(families))
            )
        )
        store = container.vector_index.store.name
        if store == "sqlite-vec":
            counts["vectors"] = int(
                await db.scalar(
                    text("SELECT count(*) FROM chunk_vectors WHERE user_id = :u"), {"u": user_id}
                )
            )
        elif store == "pgvector":
            counts["vectors"] = int(
                await db.scalar(
                    text("SELECT count(*) FROM chunk_embeddings WHERE user_id = :u"),
                    {"u": user_id},
                )
            )
        if container.settings.is_sqlite:
            counts["keyword index"] = int(
                await db.scalar(
                    text("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH :owner"),
                    {"owner": owner_token(user_id)},
                )
            )
    return counts


async def populate(client: httpx.AsyncClient, user: TestUser, tag: str) -> dict[str, Any]:
    """Two sessions with an exchange each, two documents, an API key and a second login."""
    made: dict[str, Any] = {"sessions": [], "documents": {}}
    for number in range(2):
        r = await client.post("/sessions", json={"title": f"{tag} {number}"}, headers=user.headers)
        session_id = r.json()["id"]
        r = await client.post(
            "/inference/query",
            json={"query": f"hello {tag} {number}", "session_id": session_id},
            headers=user.headers,
        )
        assert r.status_code == 200, r.text
        made["sessions"].append(session_id)
        data = f"{tag} keeps note {number} about {tag}word{number}.\n".encode()
        r = await client.post(
            "/upload/document",
            files={"file": (f"{tag}-{number}.txt", data, "text/plain")},
            headers=user.headers,
        )
        assert r.status_code == 200, r.text
        made["documents"][r.json()["id"]] = data
    r = await client.post("/api-keys", json={"name": tag}, headers=user.headers)
    assert r.status_code == 201, r.text
    made["api_key"] = r.json()["key"]
    r = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    made["second_login"] = r.json()
    return made


# -- deleting an account -------------------------------------------------------------------------


DIALECTS = {
    "003": ("/auth/me", 204),
    "001": ("/users/me/", 204),
    "000": ("/api/auth/me", 200),
}


@pytest.mark.parametrize("dialect", list(DIALECTS))
async def test_deleting_an_account_leaves_nothing_of_it_and_touches_no_one_else(
    dialect: str, stack: tuple[Container, httpx.AsyncClient, Any]
) -> None:
    container, client, probe = stack
    alice, bob = await register_user(client, "alice"), await register_user(client, "bob")
    alices, bobs = await populate(client, alice, "alice"), await populate(client, bob, "bob")
    # One more document, long enough (~60 chunks to embed) to be still indexing when the
    # account goes.
    late = " ".join(f"Line {n} of a late note about tardigrades and moss." for n in range(1500))
    r = await client.post(
        "/upload/document",
        params={"background": "true"},
        files={"file": ("late.txt", late.encode(), "text/plain")},
        headers=alice.headers,
    )
    assert r.status_code == 202, r.text
    bob_before = await count_owned(container, bob.id) | probe(bob.id)
    assert all(bob_before.values()), bob_before
    alice_before = await count_owned(container, alice.id) | probe(alice.id)
    assert all(alice_before.values()), alice_before

    path, status = DIALECTS[dialect]
    r = await client.request("DELETE", path, json={"current_password": "wrong password 1"})
    assert r.status_code == 401  # no credentials at all
    r = await client.request(
        "DELETE", path, json={"current_password": "wrong password 1"}, headers=alice.headers
    )
    assert r.status_code == 400
    assert r.json()["detail"] == "Current password is incorrect"
    r = await client.request("DELETE", path, headers=alice.headers)
    assert r.status_code == 422
    stable = {key: alice_before[key] for key in ("users", "documents", "messages", "blobs")}
    after_refusals = await count_owned(container, alice.id) | probe(alice.id)
    assert {key: after_refusals[key] for key in stable} == stable

    r = await client.request("DELETE", path, json=ACCOUNT, headers=alice.headers)
    assert r.status_code == status, r.text
    if dialect == "000":
        assert r.json() == {"message": "Account deleted", "id": alice.id}

    left = await count_owned(container, alice.id) | probe(alice.id)
    assert left == dict.fromkeys(left, 0), left
    assert await count_owned(container, bob.id) | probe(bob.id) == bob_before

    # Every credential of the account is dead; the address is free again.
    for credential in (
        alice.access_token,
        alices["api_key"],
        alices["second_login"]["access_token"],
    ):
        r = await client.get("/auth/me", headers={"Authorization": f"Bearer {credential}"})
        assert r.status_code == 401
    for token in (alice.refresh_token, alices["second_login"]["refresh_token"]):
        assert (
            await client.post("/auth/refresh", json={"refresh_token": token})
        ).status_code == 401
    r = await client.post("/auth/login", json={"email": alice.email, "password": PASSWORD})
    assert r.status_code == 401
    again = await register_user(client, "again", email=alice.email)
    assert again.id != alice.id
    assert (await client.get("/sessions", headers=again.headers)).json() == []
    assert (await client.get("/documents", headers=again.headers)).json() == []

    # Bob's data works as before: his sessions, originals and answers.
    for session_id in bobs["sessions"]:
        r = await client.get(f"/sessions/{session_id}/messages", headers=bob.headers)
        assert [m["role"] for m in r.json()] == ["user", "assistant"]
    for document_id, data in bobs["documents"].items():
        r = await client.get(f"/documents/{document_id}/file", headers=bob.headers)
        assert r.content == data
    hits = await container.retriever.retrieve(bob.id, "bobword1", mode="keyword")
    assert hits[0].document_id in bobs["documents"]
    hits = await container.retriever.retrieve(bob.id, "what does bob keep note 0 about")
    assert hits[0].document_id in bobs["documents"]


# -- changing the email ------------------------------------------------------------------------


async def test_email_change_needs_the_password_keeps_addresses_unique_and_ends_other_logins(
    client: httpx.AsyncClient,
) -> None:
    alice, bob = await register_user(client, "alice"), await register_user(client, "bob")
    other_tab = (
        await client.post("/auth/login", json={"email": alice.email, "password": PASSWORD})
    ).json()
    new_email = f"Renamed-{uuid.uuid4().hex[:8]}@Example.com"

    for body, detail in (
        ({"email": new_email}, "current_password is required to change the email"),
        (
            {"email": new_email, "current_password": "wrong password 1"},
            "Current password is incorrect",
        ),
        ({"email": bob.email.upper(), "current_password": PASSWORD}, "Email already registered"),
        (
            {"username": "kept-not", "email": bob.email, "current_password": PASSWORD},
            "Email already registered",
        ),
    ):
        r = await client.put("/users/me/", json=body, headers=alice.headers)
        assert r.status_code == 400, r.text
        assert r.json()["detail"] == detail
    me = (await client.get("/users/me/", headers=alice.headers)).json()
    assert me["email"] == alice.email
    assert me["username"] != "kept-not"  # all or nothing
    r = await client.put("/users/me/", json={"email": "not an email"}, headers=alice.headers)
    assert r.status_code == 422

    r = await client.put(
        "/users/me/",
        json={"email": new_email, "current_password": PASSWORD, "first_name": "Alicia"},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["email"] == new_email.lower()
    assert r.json()["first_name"] == "Alicia"
    # This login goes on; the other tab's login has ended, refresh token included.
    assert (await client.get("/auth/me", headers=alice.headers)).json()[
        "email"
    ] == new_email.lower()
    r = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {other_tab['access_token']}"}
    )
    assert r.status_code == 401
    r = await client.post("/auth/refresh", json={"refresh_token": other_tab["refresh_token"]})
    assert r.status_code == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    ).status_code == 200
    # The new address logs in through every dialect, case-insensitively; the old one no more.
    r = await client.post("/auth/login", json={"email": new_email.upper(), "password": PASSWORD})
    assert r.status_code == 200
    r = await client.post("/token", data={"username": new_email, "password": PASSWORD})
    assert r.status_code == 200
    r = await client.post("/auth/login", json={"email": alice.email, "password": PASSWORD})
    assert r.status_code == 401
    # The old address is free for someone else; the new one is taken.
    assert (await register_user(client, "new", email=alice.email)).email == alice.email
    r = await client.post("/auth/register", json={"email": new_email.upper(), "password": PASSWORD})
    assert r.status_code == 400


async def test_email_change_through_an_api_key_ends_every_login(client: httpx.AsyncClient) -> None:
    alice = await register_user(client, "alice")
    key = (await client.post("/api-keys", json={"name": "k"}, headers=alice.headers)).json()["key"]
    new_email = f"keyed-{uuid.uuid4().hex[:8]}@example.com"
    r = await client.put(
        "/users/me/",
        json={"email": new_email, "current_password": PASSWORD},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    assert (await client.get("/auth/me", headers=alice.headers)).status_code == 401
    r = await client.get("/auth/me", headers={"Authorization": f"Bearer {key}"})
    assert r.json()["email"] == new_email


async def test_wrong_current_passwords_count_as_failed_logins(client: httpx.AsyncClient) -> None:
    """A stolen token or API key must not become an unthrottled password oracle: wrong
    ``current_password`` values on the email change and the account deletion count toward the
    account's failed-login brake, and once it is on, the right one is refused too."""
    alice = await register_user(client, "alice")
    key = (await client.post("/api-keys", json={"name": "k"}, headers=alice.headers)).json()["key"]
    as_key = {"Authorization": f"Bearer {key}"}
    guesses = [("PUT", "/users/me/", {"email": alice.email}), ("DELETE", "/auth/me", {})]
    for attempt in range(10):  # OMNICHAT_FAILED_LOGIN_LIMIT: 10 per 15 minutes
        method, path, body = guesses[attempt % 2]
        r = await client.request(
            method, path, json={**body, "current_password": f"guess {attempt:04d}"}, headers=as_key
        )
        assert r.status_code == 400, r.text
    for method, path, body in guesses:
        r = await client.request(
            method, path, json={**body, "current_password": PASSWORD}, headers=as_key
        )
        assert r.status_code == 429, r.text
        assert "Retry-After" in r.headers
    r = await client.post("/auth/login", json={"email": alice.email, "password": PASSWORD})
    assert r.status_code == 429
    assert (await client.get("/auth/me", headers=alice.headers)).status_code == 200  # still here


async def test_an_unknown_field_is_refused_not_ignored(client: httpx.AsyncClient) -> None:
    """``new_password`` is not a field: a 200 that kept the old password would mislead."""
    alice = await register_user(client, "alice")
    r = await client.put(
        "/users/me/",
        json={"new_password": "another good passphrase", "current_password": PASSWORD},
        headers=alice.headers,
    )
    assert r.status_code == 422
    assert r.json()["detail"] == "new_password: Extra inputs are not permitted"
    r = await client.post("/auth/login", json={"email": alice.email, "password": PASSWORD})
    assert r.status_code == 200
    for path, body in (
        ("/sessions", {"title": "t", "sessionId": "x"}),
        ("/api/sessions", {"title": "t", "owner": "x"}),
        ("/auth/me", {"current_password": PASSWORD, "confirm": True}),
    ):
        method = "DELETE" if path == "/auth/me" else "POST"
        r = await client.request(method, path, json=body, headers=alice.headers)
        assert r.status_code == 422, (path, r.text)
    assert (await client.get("/sessions", headers=alice.headers)).json() == []


async def test_an_upload_waiting_for_its_indexing_answers_when_deleted_meanwhile(
    client: httpx.AsyncClient,
) -> None:
    """The upload answers when indexing ends; a delete of the document (or of the account)
    meanwhile cancels the indexing: the upload then answers 404, never a 500."""
    for deleting in ("document", "account"):
        alice = await register_user(client, "alice")
        long_text = " ".join(f"Line {n} about lichens and moss." for n in range(3000))
        upload = asyncio.create_task(
            client.post(
                "/upload/document",
                files={"file": ("long.txt", long_text.encode(), "text/plain")},
                headers=alice.headers,
            )
        )
        listed: list[Any] = []
        while not listed:
            await asyncio.sleep(0.02)
            listed = (await client.get("/documents", headers=alice.headers)).json()
        assert listed[0]["status"] == "processing"
        if deleting == "document":
            r = await client.delete(f"/documents/{listed[0]['id']}", headers=alice.headers)
            assert r.status_code == 204
        else:
            r = await client.request("DELETE", "/auth/me", json=ACCOUNT, headers=alice.headers)
            assert r.status_code == 204
        r = await upload
        assert r.status_code == 404, r.text
        assert r.json() == {"detail": DELETED_WHILE_INDEXING}
