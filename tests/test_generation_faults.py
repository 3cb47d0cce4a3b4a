"""Provider faults, client disconnects, stop and re-attach, and ownership of live replies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from omnichat.app import create_app
from omnichat.settings import Settings
from tests.conftest import (
    FAKE_KEYS,
    LLM_TEST_SETTINGS,
    TestUser,
    ThreadedServer,
    UserFactory,
    lifespan_of,
    provider_settings,
    register_user,
)
from tests.fakes import CutAfter, Fail, FakeProviderServer, Hang, Reply
from tests.sse import DONE, SSETranscript, assert_unreachable, open_chat_stream, stream_sse
from tests.test_generation import _messages, _session, wait_for_status

TOKENS = [f" t{i}" for i in range(12)]
FULL = "".join(TOKENS)


@pytest.fixture
async def user(make_llm_user: UserFactory) -> TestUser:
    return await make_llm_user("faults")


async def test_429_with_retry_after_then_success(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    fake_provider.script(Fail(429, retry_after=1), Reply("recovered"))
    started = asyncio.get_running_loop().time()
    r = await llm_client.post(
        "/inference/query", json={"query": "hi", "model": "openai"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["response"] == "recovered"
    assert len(fake_provider.requests_for("openai")) == 2
    # Retry-After was honoured (not the test app's 10-50 ms backoff).
    assert asyncio.get_running_loop().time() - started >= 0.9


async def test_500s_exhaust_retries_then_fallback_answers(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(Fail(500), Fail(503), Fail(500), Reply("from the fallback"))
    transcript = await stream_sse(
        llm_client,
        "POST",
        "/chat/stream",
        json={"session_id": session_id, "prompt": "hi", "provider": "openai"},
        headers=user.headers,
    )
    assert transcript.text == "from the fallback"
    assert transcript.final["model"] == "anthropic:claude-haiku-5-5"
    assert len(fake_provider.requests_for("openai")) == 3
    assert len(fake_provider.requests_for("anthropic")) == 1
    messages = await _messages(llm_client, user, session_id)
    assert messages[-1]["model"] == "anthropic:claude-haiku-5-5"
    assert messages[-1]["status"] == "complete"


async def test_rejected_request_is_not_retried_but_falls_back(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    fake_provider.script(Fail(401))
    r = await llm_client.post(
        "/inference/query", json={"query": "hi", "model": "gpt"}, headers=user.headers
    )
    assert r.status_code == 200
    assert len(fake_provider.requests_for("openai")) == 1
    assert r.json()["model"] == "anthropic:claude-haiku-5-5"


async def test_total_failure_is_a_clear_502_without_secrets(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    fake_provider.script(*[Fail(500, message=f"boom with key {FAKE_KEYS['openai']}")] * 6)
    r = await llm_client.post(
        "/inference/query", json={"query": "hi", "model": "openai"}, headers=user.headers
    )
    assert r.status_code == 502
    detail = r.json()["detail"]
    assert "provider" in detail
    for key in FAKE_KEYS.values():
        assert key not in r.text
    assert "Traceback" not in r.text


async def test_failed_reply_is_stored_as_error_and_kept_out_of_context(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(*[Fail(500)] * 6)
    transcript = await stream_sse(
        llm_client,
        "POST",
        "/chat/stream",
        json={"session_id": session_id, "prompt": "doomed question", "provider": "openai"},
        headers=user.headers,
    )
    assert transcript.final["status"] == "error"
    assert transcript.final["error"]
    messages = await _messages(llm_client, user, session_id)
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "error"),
    ]
    await stream_sse(
        llm_client,
        "POST",
        "/chat/stream",
        json={"session_id": session_id, "prompt": "next question", "provider": "openai"},
        headers=user.headers,
    )
    sent = fake_provider.requests_for("openai")[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] != "system"] == ["next question"]


async def test_cut_mid_stream_stores_partial_with_error(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(CutAfter(3, tokens=TOKENS))
    transcript = await stream_sse(
        llm_client,
        "POST",
        "/chat/stream",
        json={"session_id": session_id, "prompt": "hi", "provider": "anthropic"},
        headers=user.headers,
    )
    assert transcript.text == "".join(TOKENS[:3])
    assert transcript.final["status"] == "error"
    assert "provider" in transcript.final["error"]
    messages = await _messages(llm_client, user, session_id)
    assert messages[-1]["status"] == "error"
    assert messages[-1]["content"] == "".join(TOKENS[:3])
    # Tokens had reached the client, so there was no retry.
    assert len(fake_provider.requests_for("anthropic")) == 1


async def test_first_token_timeout_then_retry(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    fake_provider.script(Hang(5), Reply("after the hang"))
    r = await llm_client.post(
        "/inference/query", json={"query": "hi", "model": "cohere"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["response"] == "after the hang"
    assert len(fake_provider.requests_for("cohere")) == 2


async def test_client_disconnect_reply_still_completes(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(Reply(tokens=TOKENS, interval_s=0.05))
    async with open_chat_stream(
        llm_client, user.headers, read_deltas=2, session_id=session_id, prompt="hi"
    ):
        pass
    # The client is gone; the reply goes on and is stored whole.
    messages = await wait_for_status(llm_client, user, session_id, "complete")
    assert messages[-1]["content"] == FULL


def _one_slot_settings(
    database_url: str, fake_provider: FakeProviderServer, data_dir: Path
) -> Settings:
    """The LLM test settings with one concurrency slot per user: a slot held is a 429."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key="k" * 40,
        access_log=False,
        **provider_settings(fake_provider),
        **{**LLM_TEST_SETTINGS, "max_concurrent_generations": 1},
    )


async def test_a_client_leaving_an_openai_stream_ends_it_and_frees_the_slot_at_once(
    app: object,  # migrations applied
    database_url: str,
    fake_provider: FakeProviderServer,
    tmp_path,
) -> None:
    """/v1 streams are not stored: when the client goes, the provider stream is closed and the
    user's only concurrency slot is free again, long before the provider would have finished."""
    settings = _one_slot_settings(database_url, fake_provider, tmp_path)
    slow = Reply(tokens=[f" w{i}" for i in range(400)], interval_s=0.05)  # 20 s if left to run
    fake_provider.script(slow, Reply("after"))
    body = {
        "model": "openai:gpt-5.4-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with ThreadedServer(create_app(settings)) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            user = await register_user(client, "v1-leave")
            async with client.stream(
                "POST", "/v1/chat/completions", json=body, headers=user.headers
            ) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if '"content"' in line:
                        break  # one token, then the client goes
            started = asyncio.get_running_loop().time()
            while True:  # the slot comes back within a second or so, not after 20 s
                r = await client.post(
                    "/v1/chat/completions", json={**body, "stream": False}, headers=user.headers
                )
                if r.status_code != 429 or asyncio.get_running_loop().time() - started > 5:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == "after"


async def test_stop_stores_partial_reply(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(Reply(tokens=TOKENS * 4, interval_s=0.05))
    async with open_chat_stream(
        llm_client,
        user.headers,
        read_deltas=3,
        session_id=session_id,
        prompt="hi",
        provider="gemini",
    ) as live:
        message_id = live.message_id
        r = await llm_client.post(f"/chat/stop/{message_id}", headers=user.headers)
        assert r.status_code == 200
        assert r.json() == {"message_id": message_id, "status": "stopped"}
        transcript = await live.finish()
    assert transcript.final["status"] == "stopped"
    messages = await _messages(llm_client, user, session_id)
    stored = messages[-1]
    assert stored["status"] == "stopped"
    assert stored["content"] == transcript.text
    assert 0 < len(stored["content"]) < len(FULL * 4)
    # Stopping again reports the stored status.
    r = await llm_client.post(f"/chat/stop/{message_id}", headers=user.headers)
    assert r.json()["status"] == "stopped"


async def test_reattach_replays_running_and_finished_replies(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(Reply(tokens=TOKENS, interval_s=0.05))
    async with open_chat_stream(
        llm_client, user.headers, read_deltas=2, session_id=session_id, prompt="hi"
    ) as live:
        message_id = live.message_id
    # Re-attach while it runs: everything from the start, then the rest live.
    replay = await stream_sse(llm_client, "GET", f"/chat/stream/{message_id}", headers=user.headers)
    assert replay.text == FULL
    assert replay.final["status"] == "complete"
    # And once it is finished, from what was stored.
    again = await stream_sse(llm_client, "GET", f"/chat/stream/{message_id}", headers=user.headers)
    assert again.text == FULL
    assert again.final["status"] == "complete"


async def test_other_users_cannot_touch_a_reply(
    llm_client: httpx.AsyncClient,
    fake_provider: FakeProviderServer,
    user: TestUser,
    make_llm_user: UserFactory,
) -> None:
    intruder = await make_llm_user("intruder")
    session_id = await _session(llm_client, user)
    r = await llm_client.post(
        "/chat/stream", json={"session_id": session_id, "prompt": "mine?"}, headers=intruder.headers
    )
    assert r.status_code == 404
    r = await llm_client.post(
        "/inference/query",
        json={"query": "mine?", "session_id": session_id},
        headers=intruder.headers,
    )
    assert r.status_code == 404
    r = await llm_client.post(
        "/api/cohere/generate",
        json={"prompt": "mine?", "session": session_id},
        headers=intruder.headers,
    )
    assert r.status_code == 404

    fake_provider.script(Reply(tokens=TOKENS, interval_s=0.05))
    async with open_chat_stream(
        llm_client, user.headers, read_deltas=1, session_id=session_id, prompt="hi"
    ) as live:
        await assert_unreachable(llm_client, live.message_id, intruder)
        transcript = await live.finish()
    assert transcript.final["status"] == "complete"
    messages = await _messages(llm_client, user, session_id)
    assert [m["content"] for m in messages] == ["hi", FULL]


async def test_rate_and_concurrency_limits(
    database_url: str, fake_provider: FakeProviderServer, tmp_path, make_user: UserFactory
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="k" * 40,
        access_log=False,
        **provider_settings(fake_provider),
        **{
            **LLM_TEST_SETTINGS,
            "generation_rate_limit": "3/minute",
            "max_concurrent_generations": 1,
        },
    )
    limited = create_app(settings)
    async with lifespan_of(limited):
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://limited") as client:
            email = "limits-" + tmp_path.name + "@example.com"
            await client.post(
                "/auth/register", json={"email": email, "password": "correct horse battery"}
            )
            token = (
                await client.post(
                    "/auth/login", json={"email": email, "password": "correct horse battery"}
                )
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            fake_provider.script(Hang(0.5))
            slow = asyncio.create_task(
                client.post("/inference/query", json={"query": "slow"}, headers=headers)
            )
            # Wait until the slow one is at the provider, i.e. holds the user's only slot.
            while not fake_provider.requests_for("openai"):  # noqa: ASYNC110 - another thread
                await asyncio.sleep(0.01)
            r = await client.post("/inference/query", json={"query": "second"}, headers=headers)
            assert r.status_code == 429
            assert r.headers["retry-after"] == "1"
            assert (await slow).status_code == 200
            r = await client.post("/inference/query", json={"query": "third"}, headers=headers)
            assert r.status_code == 200
            r = await client.post("/inference/query", json={"query": "fourth"}, headers=headers)
            assert r.status_code == 429
            assert int(r.headers["retry-after"]) >= 1
            assert "Rate limit" in r.json()["detail"]


async def test_session_deleted_mid_reply_does_not_lose_other_replies(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    """Deleting a session stops only the reply in it (at once, with an error ending that says
    why); the reply in the other session runs on and is stored whole."""
    doomed, kept = await _session(llm_client, user), await _session(llm_client, user)
    fake_provider.script(*[Reply(tokens=TOKENS, interval_s=0.03)] * 2)

    async def run(session_id: str) -> SSETranscript:
        return await stream_sse(
            llm_client,
            "POST",
            "/chat/stream",
            json={"session_id": session_id, "prompt": "hi"},
            headers=user.headers,
        )

    async def delete_soon() -> int:
        while len(fake_provider.requests_for("openai")) < 2:  # noqa: ASYNC110 - another thread
            await asyncio.sleep(0.01)
        return (await llm_client.delete(f"/sessions/{doomed}", headers=user.headers)).status_code

    first, second, deleted = await asyncio.gather(run(doomed), run(kept), delete_soon())
    assert deleted == 204
    assert first.final["status"] == "error"
    assert first.final["error_code"] == "deleted"
    assert first.events[-1] == DONE
    assert len(first.text) < len(FULL)
    assert second.final["status"] == "complete"
    assert second.text == FULL
    messages = await _messages(llm_client, user, kept)
    assert messages[-1]["status"] == "complete"
    assert messages[-1]["content"] == FULL
    assert (await llm_client.get(f"/sessions/{doomed}", headers=user.headers)).status_code == 404


async def test_stored_query_failure_is_a_clear_502(
    llm_client: httpx.AsyncClient, fake_provider: FakeProviderServer, user: TestUser
) -> None:
    session_id = await _session(llm_client, user)
    fake_provider.script(*[Fail(500)] * 6)
    r = await llm_client.post(
        "/inference/query",
        json={"query": "hi", "model": "openai", "session_id": session_id},
        headers=user.headers,
    )
    assert r.status_code == 502
    assert r.json()["detail"].startswith("The anthropic provider failed")
    assert r.json()["detail"].count("provider failed") == 1
    messages = await _messages(llm_client, user, session_id)
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "error"),
    ]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2}),
        ("/inference/query", {"query": "hi"}),
        ("/api/cohere/generate", {"prompt": "hi"}),
    ],
)
async def test_a_client_leaving_a_whole_reply_ends_its_calls_and_frees_the_slot(
    app: object,  # migrations applied
    database_url: str,
    fake_provider: FakeProviderServer,
    tmp_path: Path,
    path: str,
    body: dict[str, object],
) -> None:
    """A reply answered whole and stored nowhere (/v1 without stream, seed 003 without a
    session, seed 000) is not worth finishing for a client that left: its provider calls (each
    of ``n``) are cancelled and the user's only slot is free again at once."""
    settings = _one_slot_settings(database_url, fake_provider, tmp_path)
    slow = Reply(tokens=[f" w{i}" for i in range(400)], interval_s=0.05)  # 20 s if left to run
    calls = body.get("n", 1)
    assert isinstance(calls, int)
    fake_provider.script(*[slow] * calls, Reply("after"))
    with ThreadedServer(create_app(settings)) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            user = await register_user(client, "whole-leave")
            with pytest.raises(httpx.ReadTimeout):
                await client.post(
                    path,
                    json={"model": "openai:gpt-5.4-mini", **body},
                    headers=user.headers,
                    timeout=1.0,
                )
            started = asyncio.get_running_loop().time()
            ask = {"model": "openai:gpt-5.4-mini", "messages": [{"role": "user", "content": "x"}]}
            while True:  # the slot comes back within a second or so, not after 20 s
                r = await client.post("/v1/chat/completions", json=ask, headers=user.headers)
                if r.status_code != 429 or asyncio.get_running_loop().time() - started > 5:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == "after"
