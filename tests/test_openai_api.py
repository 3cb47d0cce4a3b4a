"""The OpenAI-compatible API, driven by the official ``openai`` SDK as the client, and the
personal API keys it authenticates with."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import TestUser, ThreadedServer, UserFactory
from tests.fakes import CutAfter, Fail, FakeProviderServer, Reply


@pytest.fixture
async def user(make_llm_user: UserFactory) -> TestUser:
    return await make_llm_user("v1")


@pytest.fixture
async def api_key(llm_client: httpx.AsyncClient, user: TestUser) -> str:
    r = await llm_client.post("/api-keys", json={"name": "my laptop"}, headers=user.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def sdk(server: ThreadedServer, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)


async def test_models_through_sdk(llm_server: ThreadedServer, api_key: str) -> None:
    models = [m.id async for m in sdk(llm_server, api_key).models.list()]
    assert "openai:gpt-5.4-mini" in models
    assert "anthropic:claude-sonnet-5-5" in models


async def test_completion_non_streaming(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply("Paris is the capital of France."))
    client = sdk(llm_server, api_key)
    completion = await client.chat.completions.create(
        model="claude",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Capital of France?"},
        ],
        max_tokens=50,
    )
    assert completion.object == "chat.completion"
    assert completion.model == "anthropic:claude-sonnet-5-5"
    assert completion.choices[0].message.content == "Paris is the capital of France."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    sent = fake_provider.requests_for("anthropic")[-1].body
    assert "Answer briefly." in sent["system"]
    assert sent["max_tokens"] == 50


async def test_completion_streaming_with_usage(
    llm_server: ThreadedServer, user: TestUser, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply(tokens=["Hel", "lo", " world"]))
    # A user's access token works as well as an API key.
    client = sdk(llm_server, user.access_token)
    stream = await client.chat.completions.create(
        model="gemini",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish = None
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert pieces == ["Hel", "lo", " world"]
    assert finish == "stop"
    assert usage is not None


async def test_multi_turn_history_is_forwarded(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    client = sdk(llm_server, api_key)
    await client.chat.completions.create(
        model="openai:gpt-5.5",
        messages=[
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"},
        ],
    )
    sent = fake_provider.requests_for("openai")[-1].body
    assert sent["model"] == "gpt-5.5"
    assert [(m["role"], m["content"]) for m in sent["messages"] if m["role"] != "system"] == [
        ("user", "one"),
        ("assistant", "two"),
        ("user", "three"),
    ]


async def test_provider_failure_before_first_token_is_http_error(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(*[Fail(400)] * 2)
    with pytest.raises(openai.APIStatusError) as error:
        await sdk(llm_server, api_key).chat.completions.create(
            model="openai", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert error.value.status_code == 502


async def test_failure_mid_stream_is_an_error_event(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(CutAfter(2, tokens=["a", "b", "c", "d"]))
    stream = await sdk(llm_server, api_key).chat.completions.create(
        model="cohere", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received: list[str] = []

    async def consume() -> None:
        async for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)

    with pytest.raises(openai.APIError):
        await consume()
    assert "".join(received) == "ab"


async def test_unknown_model_is_openais_404(llm_server: ThreadedServer, api_key: str) -> None:
    client = sdk(llm_server, api_key)
    with pytest.raises(openai.NotFoundError) as error:
        await client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    assert "Available models" in str(error.value)
    body = error.value.body
    assert isinstance(body, dict)
    assert (body["code"], body["param"], body["type"]) == (
        "model_not_found",
        "model",
        "not_found_error",
    )


async def test_api_key_lifecycle(
    llm_client: httpx.AsyncClient, user: TestUser, llm_server: ThreadedServer
) -> None:
    r = await llm_client.post("/api-keys", json={"name": "ci"}, headers=user.headers)
    created = r.json()
    assert created["key"].startswith("sk-omni-")
    assert created["prefix"] == created["key"][: len(created["prefix"])]
    listed = (await llm_client.get("/api-keys", headers=user.headers)).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    key_headers = {"Authorization": f"Bearer {created['key']}"}
    assert (await llm_client.get("/v1/models", headers=key_headers)).status_code == 200
    assert (await llm_client.get("/sessions", headers=key_headers)).status_code == 200
    listed = (await llm_client.get("/api-keys", headers=user.headers)).json()
    assert listed[0]["last_used_at"] is not None
    assert (
        await llm_client.delete(f"/api-keys/{created['id']}", headers=user.headers)
    ).status_code == 204
    r = await llm_client.get("/v1/models", headers=key_headers)
    assert r.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        await sdk(llm_server, created["key"]).models.list()


async def test_api_keys_are_owner_scoped(
    llm_client: httpx.AsyncClient, user: TestUser, make_llm_user: UserFactory
) -> None:
    other = await make_llm_user("other")
    created = (await llm_client.post("/api-keys", json={}, headers=user.headers)).json()
    assert (await llm_client.get("/api-keys", headers=other.headers)).json() == []
    r = await llm_client.delete(f"/api-keys/{created['id']}", headers=other.headers)
    assert r.status_code == 404
    key_headers = {"Authorization": f"Bearer {created['key']}"}
    assert (await llm_client.get("/v1/models", headers=key_headers)).status_code == 200


async def test_forged_api_key_is_401(llm_client: httpx.AsyncClient) -> None:
    r = await llm_client.get("/v1/models", headers={"Authorization": "Bearer sk-omni-forged"})
    assert r.status_code == 401
