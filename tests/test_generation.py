"""The generate endpoints of the three dialects against the fake providers, through the real
server on loopback and the official SDKs inside it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import FAKE_KEYS, TestUser, UserFactory
from tests.fakes import FakeProviderServer, Reply
from tests.sse import DONE, SSETranscript, read_events, stream_sse


async def _session(client: httpx.AsyncClient, user: TestUser, title: str = "t") -> str:
    r = await client.post("/sessions", json={"title": title}, headers=user.headers)
    assert r.status_code == 200
    return str(r.json()["id"])


async def _messages(
    client: httpx.AsyncClient, user: TestUser, session_id: str
) -> list[dict[str, Any]]:
    r = await client.get(f"/sessions/{session_id}/messages", headers=user.headers)
    assert r.status_code == 200
    return list(r.json())


async def wait_for_status(
    client: httpx.AsyncClient, user: TestUser, session_id: str, status: str, within_s: float = 10
) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        messages = await _messages(client, user, session_id)
        if messages and messages[-1]["status"] == status:
            return messages
        assert asyncio.get_running_loop().time() < deadline, messages
        await asyncio.sleep(0.05)


@pytest.fixture
async def user(make_llm_user: UserFactory) -> TestUser:
    return await make_llm_user("gen")


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-5.4-mini"),
        ("anthropic", "claude-sonnet-5-5"),
        ("gemini", "gemini-3.8-flash"),
        ("cohere", "command-a-plus-05-2026"),
    ],
)
async def test_chat_stream_each_provider(
    llm_client: httpx.AsyncClient,
    fake_provider: FakeProviderServer,
    user: TestUser,
    provider: str,
    model: str,
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(Reply(tokens=["Why", " don't", " scientists", " trust", " atoms?"]))
    transcript = await stream_sse(
        llm_client,
        "POST",
        "/chat/stream",
        json={
            "session_id": session_id,
            "prompt": "Tell me a joke",
            "provider": provider,
            "model": model,
        },
        headers=user.headers,
    )
    # Exactly the documented shape: a delta per token, then [DONE].
    deltas = [e["delta"] for e in transcript.events if isinstance(e, dict) and e["delta"]]
    assert deltas == ["Why", " don't", " scientists", " trust", " atoms?"]
    assert transcript.events[-1] == DONE
    assert all(isinstance(e, dict) and "delta" in e for e in transcript.events[:-1])
    assert transcript.final["status"] == "complete"
    assert transcript.final["model"] == f"{provider}:{model}"

    [sent] = fake_provider.requests_for(provider)
    assert FAKE_KEYS[provider] in " ".join(sent.headers.values())
    messages = await _messages(llm_client, user, session_id)
    assert [(m["role"], m["content"], m["status"]) for m in messages] == [
        ("user", "Tell me a joke", "complete"),
        ("assistant", "Why don't scientists trust atoms?", "complete"),
    ]
    assert messages[1]["model"] == f"{provider}:{model}"
    assert messages[1]["id"] == transcript.first["message_id"]


async def test_history_and_system_prompt_are_sent(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    session_id = await _session(llm_client, user)
    for prompt in ("first question", "second question"):
        await stream_sse(
            llm_client,
            "POST",
            "/chat/stream",
            json={"session_id": session_id, "prompt": prompt, "provider": "openai"},
            headers=user.headers,
        )
    last = fake_provider.requests_for("openai")[-1].body
    assert [(m["role"], m["content"]) for m in last["messages"]] == [
        ("system", "You are a helpful assistant."),
        ("user", "first question"),
        ("assistant", "Echo: first question"),
        ("user", "second question"),
    ]


async def test_history_is_trimmed_oldest_first(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    """The test app's context is 4,000 tokens with 1,000 reserved for the reply."""
    session_id = await _session(llm_client, user)
    for i in range(8):
        for role in ("user", "assistant"):
            r = await llm_client.post(
                "/api/chats",
                json={"message": f"{role} {i} " + "x" * 1500, "role": role, "session": session_id},
                headers=user.headers,
            )
            assert r.status_code == 201
    await stream_sse(
        llm_client,
        "POST",
        "/chat/stream",
        json={"session_id": session_id, "prompt": "latest", "provider": "anthropic"},
        headers=user.headers,
    )
    sent = fake_provider.requests_for("anthropic")[-1].body
    contents = [m["content"] for m in sent["messages"]]
    assert contents[-1] == "latest"
    assert sent["messages"][0]["role"] == "user"
    kept = [c.split(" x")[0] for c in contents[:-1]]
    assert 0 < len(kept) < 16
    # What is kept is the most recent history, in order.
    assert kept == [f"{r} {i}" for i in range(8) for r in ("user", "assistant")][-len(kept) :]


async def test_new_session_when_none_given(llm_client: httpx.AsyncClient, user: TestUser) -> None:
    transcript = await stream_sse(
        llm_client,
        "POST",
        "/chat/stream",
        json={"prompt": "Plan a trip to Lisbon"},
        headers=user.headers,
    )
    session_id = transcript.first["session_id"]
    r = await llm_client.get(f"/sessions/{session_id}", headers=user.headers)
    assert r.json()["title"] == "Plan a trip to Lisbon"
    assert [m["role"] for m in r.json()["messages"]] == ["user", "assistant"]


async def test_keepalive_comments_while_provider_is_silent(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    from tests.fakes import HangAfter

    fake_provider.script(HangAfter(1, 0.7, tokens=["a", "b"]))
    transcript = await stream_sse(
        llm_client,
        "POST",
        "/chat/stream",
        json={"prompt": "hi", "provider": "openai"},
        headers=user.headers,
    )
    assert transcript.text == "ab"
    assert ": keep-alive" in transcript.comments


async def test_inference_query_stores_both_messages(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(
        Reply("Retrieval-Augmented Generation (RAG) combines search and generation.")
    )
    r = await llm_client.post(
        "/inference/query",
        json={
            "query": "What is RAG?",
            "model": "claude",
            "enable_rag": True,
            "session_id": session_id,
        },
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    assert (
        r.json()["response"]
        == "Retrieval-Augmented Generation (RAG) combines search and generation."
    )
    assert r.json()["model"] == "anthropic:claude-sonnet-5-5"
    messages = await _messages(llm_client, user, session_id)
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]


async def test_inference_query_without_session_stores_nothing(
    llm_client: httpx.AsyncClient, user: TestUser
) -> None:
    r = await llm_client.post(
        "/inference/query", json={"query": "hello", "model": "gemini"}, headers=user.headers
    )
    assert r.status_code == 200
    assert r.json()["response"] == "Echo: hello"
    assert (await llm_client.get("/sessions", headers=user.headers)).json() == []


async def test_cohere_generate_seed_flow(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    """Seed 000's example flow: the client stores both sides itself."""
    session_id = (await llm_client.post("/api/sessions", json={}, headers=user.headers)).json()[
        "id"
    ]
    await llm_client.post(
        "/api/chats",
        json={"message": "Earlier question", "role": "user", "session": session_id},
        headers=user.headers,
    )
    await llm_client.post(
        "/api/chats",
        json={"message": "Earlier answer", "role": "assistant", "session": session_id},
        headers=user.headers,
    )
    await llm_client.post(
        "/api/chats",
        json={"message": "Tell me more", "role": "user", "session": session_id},
        headers=user.headers,
    )
    r = await llm_client.post(
        "/api/cohere/generate",
        json={"prompt": "Tell me more", "session": session_id},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "Echo: Tell me more"
    assert r.json()["model"].startswith("cohere:")
    sent = fake_provider.requests_for("cohere")[-1].body
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "You are a helpful assistant."),
        ("user", "Earlier question"),
        ("assistant", "Earlier answer"),
        ("user", "Tell me more"),
    ]
    # Nothing stored by the server: still the three client-stored messages.
    assert len((await llm_client.get(f"/api/chats/{session_id}", headers=user.headers)).json()) == 3


async def test_models_lists_configured_providers(
    llm_client: httpx.AsyncClient, user: TestUser
) -> None:
    r = await llm_client.get("/models", headers=user.headers)
    body = r.json()
    assert body["offline"] is False
    providers = {m["provider"] for m in body["models"]}
    assert providers == {"openai", "anthropic", "gemini", "cohere"}
    assert "local:echo" not in {m["id"] for m in body["models"]}


async def test_unknown_model_is_400_with_valid_list(
    llm_client: httpx.AsyncClient, user: TestUser
) -> None:
    r = await llm_client.post(
        "/chat/stream",
        json={"prompt": "hi", "provider": "gemini", "model": "gemini-pro"},
        headers=user.headers,
    )
    assert r.status_code == 400
    assert "gemini:gemini-3.8-flash" in r.json()["detail"]
    r = await llm_client.post(
        "/inference/query", json={"query": "hi", "model": "mistral"}, headers=user.headers
    )
    assert r.status_code == 400


async def test_offline_model_speaks_when_nothing_is_configured(
    client: httpx.AsyncClient, alice: TestUser
) -> None:
    r = await client.post(
        "/inference/query", json={"query": "hello", "model": "claude"}, headers=alice.headers
    )
    assert r.status_code == 200
    assert "No LLM provider is configured" in r.json()["response"]
    assert r.json()["model"] == "local:echo"
    r = await client.get("/models", headers=alice.headers)
    assert r.json()["offline"] is True


__all__ = ["SSETranscript", "read_events", "wait_for_status"]
