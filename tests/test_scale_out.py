"""Two real ``omnichat serve`` processes behind client-side round robin, sharing one PostgreSQL
(pgserver, pgvector), one Redis and one S3 (moto), with the fake OpenAI provider.

tests/test_redis_workers.py proves the Redis paths with two in-process workers on one database;
this adds separate processes, PostgreSQL and S3: a token from one works on the other, a reply
streamed by one is stopped and re-attached from the other, the rate limit is shared (429 with
``Retry-After`` from either), and a document uploaded to one is listed, downloaded and grounds
an answer on the other.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest

from tests.conftest import TEST_SECRET, login_headers, postgres_url
from tests.docs_factory import make_pdf
from tests.fakes import FakeProviderServer, Reply
from tests.s3_server import S3_TEST_BUCKET, S3_TEST_REGION
from tests.sse import open_chat_stream, stream_sse
from tests.test_crash_consistency import Server

RATE = 4
TOKENS = [f" w{i}" for i in range(40)]  # 2 s at 50 ms a token


@pytest.fixture(scope="module")
def pair(
    pg_server: Any,
    redis_url: str,
    s3_endpoint: str,
    fake_provider_server: FakeProviderServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, Server, str]]:
    database = postgres_url(pg_server, f"scale_{uuid.uuid4().hex[:8]}")
    prefix = f"scale-{uuid.uuid4().hex[:8]}"
    shared = {
        "OMNICHAT_SECRET_KEY": TEST_SECRET,  # both sign and check the same tokens
        "OMNICHAT_REDIS_URL": redis_url,
        "OMNICHAT_BLOB_URL": f"s3://{S3_TEST_BUCKET}/{prefix}",
        "OMNICHAT_S3_ENDPOINT_URL": s3_endpoint,
        "OMNICHAT_S3_REGION": S3_TEST_REGION,
        "OMNICHAT_GENERATION_RATE_LIMIT": f"{RATE}/minute",
    }
    root = tmp_path_factory.mktemp("scale")
    servers = [
        Server(root / name, fake_provider_server, database_url=database, **shared)
        for name in ("a", "b")
    ]
    try:
        for server in servers:  # one after the other: the first applies the migrations
            server.start()
        yield servers[0], servers[1], prefix
    finally:
        for server in servers:
            server.kill()


@pytest.fixture
async def clients(
    pair: tuple[Server, Server, str], fake_provider: FakeProviderServer
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    a, b, _ = pair
    async with (
        httpx.AsyncClient(base_url=a.base, timeout=60) as client_a,
        httpx.AsyncClient(base_url=b.base, timeout=60) as client_b,
    ):
        yield client_a, client_b


async def _session(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    r = await client.post("/sessions", json={"title": "scale"}, headers=headers)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def test_login_on_one_stream_on_the_other_stop_and_reattach_across(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], fake_provider: FakeProviderServer
) -> None:
    a, b = clients
    headers = await login_headers(a, "scale")  # the token from A is accepted by B
    assert (await b.get("/auth/me", headers=headers)).status_code == 200
    session_id = await _session(b, headers)

    # Stopped on A while B streams it: stored `stopped` with the partial text.
    fake_provider.script(Reply(tokens=TOKENS * 5, interval_s=0.05))
    async with open_chat_stream(
        b, headers, read_deltas=3, session_id=session_id, prompt="long"
    ) as live:
        r = await a.post(f"/chat/stop/{live.message_id}", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "stopped"
        streamed = await live.finish()
    assert streamed.final["status"] == "stopped"
    r = await a.get(f"/sessions/{session_id}/messages", headers=headers)
    stored = r.json()[-1]
    assert stored["id"] == live.message_id
    assert stored["status"] == "stopped"
    assert stored["content"] == streamed.text
    assert 0 < len(stored["content"]) < len("".join(TOKENS * 5))

    # Re-attached on A to a reply B is still producing: what was sent, then the rest.
    fake_provider.script(Reply(tokens=TOKENS, interval_s=0.05))
    async with open_chat_stream(
        b, headers, read_deltas=3, session_id=session_id, prompt="again"
    ) as live:
        replay = await stream_sse(a, "GET", f"/chat/stream/{live.message_id}", headers=headers)
        original = await live.finish()
    assert replay.text == original.text == "".join(TOKENS)
    assert replay.final["status"] == original.final["status"] == "complete"


async def test_rate_limit_is_shared_by_both_processes(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    headers = await login_headers(a, "scale")
    statuses = []
    for index in range(RATE):  # round robin
        client = a if index % 2 == 0 else b
        r = await client.post("/inference/query", json={"query": f"q{index}"}, headers=headers)
        statuses.append(r.status_code)
    assert statuses == [200] * RATE
    for client in (a, b):
        r = await client.post("/inference/query", json={"query": "one more"}, headers=headers)
        assert r.status_code == 429, r.text
        assert int(r.headers["Retry-After"]) >= 1


async def test_document_uploaded_on_one_is_served_and_grounds_on_the_other(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    pair: tuple[Server, Server, str],
    fake_provider: FakeProviderServer,
    s3_endpoint: str,
) -> None:
    a, b = clients
    _, _, prefix = pair
    headers = await login_headers(a, "scale")
    data = make_pdf(["Intro page.", "The spare key hangs behind the blue barometer."])
    r = await a.post(
        "/upload/document",
        files={"file": ("house.pdf", data, "application/pdf")},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    document = r.json()
    assert document["status"] == "ready"

    listed = (await b.get("/documents", headers=headers)).json()
    assert [d["id"] for d in listed] == [document["id"]]
    download = await b.get(f"/documents/{document['id']}/file", headers=headers)
    assert download.status_code == 200
    assert download.content == data
    s3 = boto3.session.Session().client("s3", endpoint_url=s3_endpoint, region_name=S3_TEST_REGION)
    keys = s3.list_objects_v2(Bucket=S3_TEST_BUCKET, Prefix=f"{prefix}/").get("Contents", [])
    assert len(keys) == 1  # the original is in the shared bucket, not on A's disk

    r = await b.post(
        "/inference/query",
        json={"query": "Where does the spare key hang?", "enable_rag": True},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    sources = r.json()["sources"]
    assert sources[0]["document_id"] == document["id"]
    assert sources[0]["page"] == 2
    sent = fake_provider.requests[-1].body
    assert "blue barometer" in str(sent["messages"])
