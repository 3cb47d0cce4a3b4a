import httpx
import pytest


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    # The embedded default: SQLite (vectors in it) and a local folder of blobs.
    assert [(b["name"], b["ok"]) for b in body["backends"]] == [
        ("database", True),
        ("blob store", True),
    ]


async def test_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert len(r.headers["x-request-id"]) >= 16
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"


def test_every_model_has_its_python_defaults_from_birth() -> None:
    """Ids, timestamps and counters are there when an object is made, not at its flush: a key
    built from ``document.id`` before the flush once named every upload ``.../None``."""
    from omnichat.auth.models import TokenFamily, User
    from omnichat.chats.models import ChatSession, Message
    from omnichat.documents.models import Document

    first, second = Document(user_id="u"), Document(user_id="u")
    assert first.id is not None
    assert first.id != second.id
    assert first.created_at is not None
    assert first.status == "processing"
    assert first.attempts == 0
    assert first.original_available is True
    assert Message().created_at is not None
    assert ChatSession().id is not None
    assert User().token_version == 0
    assert TokenFamily().id is not None
    chosen = Document(id="given", attempts=2)
    assert (chosen.id, chosen.attempts) == ("given", 2)
    with pytest.raises(TypeError, match="invalid keyword"):
        Document(no_such_column=1)
