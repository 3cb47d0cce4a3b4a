"""``n`` (several choices, each its own provider call, run at once) and ``logprobs`` (OpenAI's
own, carried back as it sent them) on ``/v1/chat/completions``, through the official SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from tests.conftest import ThreadedServer
from tests.fakes import Fail, FakeProviderServer, Reply
from tests.test_openai_api import api_key, sdk, user
from tests.test_v1_fidelity import MODELS

__all__ = ["api_key", "user"]  # fixtures, imported to be used here

QUESTION = [{"role": "user", "content": "Name a colour."}]


def _seed_of(provider: str, body: dict[str, Any]) -> Any:
    if provider == "gemini":
        return body["generationConfig"]["seed"]
    return body["seed"]


@pytest.mark.parametrize("provider", list(MODELS))
async def test_n_choices_are_concurrent_calls_whole(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer, provider: str
) -> None:
    fake_provider.script(Reply("red"), Reply("green"), Reply("blue"))
    seed = {} if provider == "anthropic" else {"seed": 41}  # Anthropic has no seed
    completion = await sdk(llm_server, api_key).chat.completions.create(
        model=MODELS[provider], messages=QUESTION, n=3, **seed
    )
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    texts = sorted(choice.message.content or "" for choice in completion.choices)
    assert texts == ["blue", "green", "red"]  # each choice its own call, none lost
    assert {choice.finish_reason for choice in completion.choices} == {"stop"}
    sent = [request.body for request in fake_provider.requests_for(provider)]
    assert len(sent) == 3
    if seed:  # choice i gets seed + i: reproducible, yet the choices differ
        assert sorted(_seed_of(provider, body) for body in sent) == [41, 42, 43]
    # Usage counts every call: each choice's prompt was sent (and is billed) once.
    usage = completion.usage
    assert usage is not None
    assert usage.completion_tokens == 3
    assert usage.prompt_tokens % 3 == 0
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_n_choices_stream_interleaved_each_with_its_ending(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer, provider: str
) -> None:
    fake_provider.script(
        Reply(tokens=["one", " two", " three"], interval_s=0.02),
        Reply(tokens=["uno", " dos"], interval_s=0.03),
    )
    stream = await sdk(llm_server, api_key).chat.completions.create(
        model=MODELS[provider],
        messages=QUESTION,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts: dict[int, str] = {0: "", 1: ""}
    roles: list[int] = []
    endings: dict[int, str] = {}
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            assert choice.index not in endings, "a choice went on after its ending"
            if choice.delta.role:
                roles.append(choice.index)
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                endings[choice.index] = choice.finish_reason
    assert sorted(roles) == [0, 1]
    assert sorted(texts.values()) == ["one two three", "uno dos"]
    assert endings == {0: "stop", 1: "stop"}
    assert usage is not None
    assert usage.completion_tokens == 5


async def test_a_failing_choice_fails_the_request_and_nothing_partial_is_answered(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    # One choice's call fails on the model and on its fallback; the other is slow.
    fake_provider.script(Fail(400), Reply("slow", interval_s=0.5), Fail(400))
    with pytest.raises(openai.APIStatusError) as error:
        await sdk(llm_server, api_key).chat.completions.create(
            model=MODELS["openai"], messages=QUESTION, n=2
        )
    assert error.value.status_code == 502
    # One choice's call fails on the model and on its fallback; the other is slow.
    fake_provider.script(Fail(400), Reply("slow", interval_s=0.5), Fail(400))
    with pytest.raises(openai.APIStatusError) as error:
        await sdk(llm_server, api_key).chat.completions.create(
            model=MODELS["openai"], messages=QUESTION, n=2, stream=True
        )
    assert error.value.status_code == 502


async def test_a_choice_failing_after_another_began_ends_that_other_stream_at_once(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    # The first call to arrive fails late (and its fallback at once); by then the other call
    # is streaming a reply that would take 20 s: its provider stream must end with the 502.
    slow = Reply(tokens=[f" w{i}" for i in range(400)], interval_s=0.05)
    fake_provider.script(Fail(400, after_s=0.5), slow, Fail(400))
    with pytest.raises(openai.APIStatusError) as error:
        await sdk(llm_server, api_key).chat.completions.create(
            model=MODELS["openai"], messages=QUESTION, n=2, stream=True
        )
    assert error.value.status_code == 502
    assert len(fake_provider.requests) == 3  # the slow one was streaming
    for _ in range(50):
        if fake_provider.generations_open == 0:
            break
        await asyncio.sleep(0.1)
    assert fake_provider.generations_open == 0, "a choice's provider stream was left open"


async def test_more_choices_than_the_server_serves_is_a_400(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        await sdk(llm_server, api_key).chat.completions.create(
            model=MODELS["openai"], messages=QUESTION, n=9
        )
    assert isinstance(error.value.body, dict)
    assert error.value.body["param"] == "n"
    assert "at most 8" in error.value.body["message"]
    assert error.value.body["code"] is None  # a value out of range, not an unknown field
    assert fake_provider.requests_for("openai") == []


async def test_logprobs_reach_openai_and_come_back_whole(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply("Bob"))
    completion = await sdk(llm_server, api_key).chat.completions.create(
        model=MODELS["openai"], messages=QUESTION, logprobs=True, top_logprobs=2
    )
    sent = fake_provider.requests_for("openai")[-1].body
    assert isinstance(sent, dict)
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert [entry.token for entry in logprobs.content] == ["Bob"]
    assert [alt.token for alt in logprobs.content[0].top_logprobs] == ["Bob", "Bob~"]
    assert logprobs.content[0].bytes == list(b"Bob")


async def test_logprobs_stream_on_each_content_chunk(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply(tokens=["Hel", "lo"]))
    stream = await sdk(llm_server, api_key).chat.completions.create(
        model=MODELS["openai"], messages=QUESTION, logprobs=True, top_logprobs=1, stream=True
    )
    tokens: list[str] = []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                assert choice.logprobs is not None
                assert choice.logprobs.content is not None
                tokens += [entry.token for entry in choice.logprobs.content]
                assert len(choice.logprobs.content[0].top_logprobs) == 1
    assert tokens == ["Hel", "lo"]


async def test_logprobs_false_asks_nothing_of_any_provider(
    llm_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply("fine"))
    completion = await sdk(llm_server, api_key).chat.completions.create(
        model=MODELS["anthropic"], messages=QUESTION, logprobs=False
    )
    assert completion.choices[0].message.content == "fine"
    assert completion.choices[0].logprobs is None
