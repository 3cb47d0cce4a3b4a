"""``POST /v1/embeddings`` and ``GET /v1/models/{model}``, driven by the official ``openai`` SDK
against the real app on loopback, embedding with the app's own local MiniLM."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from tokenizers import Tokenizer

from omnichat.app import container_of
from omnichat.rag.chunking import DEFAULT_TOKENIZER_PATH
from omnichat.rag.embedders.base import Embedder
from tests.conftest import TestUser, ThreadedServer, UserFactory
from tests.test_openai_api import api_key, sdk, user

__all__ = ["api_key", "user"]  # fixtures, imported to be used here

TEXTS = [
    "The lighthouse keeper cooked harbour soup.",
    "Quarterly revenue grew by twelve percent.",
    "A cat sleeps on the warm windowsill.",
    "Photosynthesis turns light into chemical energy.",
    "The train to Lyon leaves at nine.",
]


def embedder_of(server: ThreadedServer) -> Embedder:
    return container_of(server.server.config.app).vector_index.embedder


def model_tokens(text: str) -> int:
    """Word pieces MiniLM reads, [CLS]/[SEP] included, counted here independently of the app."""
    tokenizer = Tokenizer.from_file(str(DEFAULT_TOKENIZER_PATH))
    tokenizer.no_truncation()  # tokenizer.json cuts and pads at 128
    tokenizer.no_padding()
    return len(tokenizer.encode(text).ids)


async def test_single_and_batch_are_the_embedders_vectors_in_order(
    llm_server: ThreadedServer, api_key: str
) -> None:
    client = sdk(llm_server, api_key)
    embedder = embedder_of(llm_server)
    expected = await embedder.embed_documents(TEXTS)

    single = await client.embeddings.create(model="default", input=TEXTS[0])
    assert single.object == "list"
    assert single.model == embedder.name
    assert [(item.object, item.index) for item in single.data] == [("embedding", 0)]
    assert single.data[0].embedding == pytest.approx(expected[0], abs=1e-6)
    assert len(single.data[0].embedding) == embedder.dimension == 384

    batch = await client.embeddings.create(model=embedder.name, input=TEXTS)
    assert [item.index for item in batch.data] == list(range(len(TEXTS)))
    for item, vector in zip(batch.data, expected, strict=True):
        assert item.embedding == pytest.approx(vector, abs=1e-6)
        assert math.sqrt(sum(v * v for v in item.embedding)) == pytest.approx(1.0, abs=1e-5)
    # Order is the request's: reversed texts, reversed vectors.
    backwards = await client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS[::-1])
    for item, vector in zip(backwards.data, expected[::-1], strict=True):
        assert item.embedding == pytest.approx(vector, abs=1e-6)


async def test_float_and_base64_are_the_same_floats(
    llm_server: ThreadedServer, api_key: str, llm_client: httpx.AsyncClient
) -> None:
    client = sdk(llm_server, api_key)
    as_float = await client.embeddings.create(model="default", input=TEXTS, encoding_format="float")
    # Unset, the SDK asks for base64 and decodes it itself.
    decoded = await client.embeddings.create(model="default", input=TEXTS)
    assert [d.embedding for d in decoded.data] == [f.embedding for f in as_float.data]
    # The wire format: exactly OpenAI's keys; base64 is little-endian float32.
    r = await llm_client.post(
        "/v1/embeddings",
        json={"model": "default", "input": TEXTS[:2], "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"object", "data", "model", "usage"}
    for item, expected in zip(body["data"], as_float.data[:2], strict=True):
        assert set(item) == {"object", "index", "embedding"}
        vector = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
        assert vector.tolist() == expected.embedding


async def test_usage_counts_the_models_tokens(llm_server: ThreadedServer, api_key: str) -> None:
    client = sdk(llm_server, api_key)
    one = await client.embeddings.create(model="default", input="hello world")
    assert one.usage.prompt_tokens == one.usage.total_tokens == 4  # [CLS] hello world [SEP]
    many = await client.embeddings.create(model="default", input=TEXTS)
    assert many.usage.prompt_tokens == sum(model_tokens(text) for text in TEXTS)
    assert many.usage.total_tokens == many.usage.prompt_tokens


async def test_dimensions_and_user_are_accepted_when_servable(
    llm_server: ThreadedServer, user: TestUser
) -> None:
    # An access token works as well as an API key.
    client = sdk(llm_server, user.access_token)
    result = await client.embeddings.create(
        model="default", input=["a", "b"], dimensions=384, user="end-user-42"
    )
    assert [len(item.embedding) for item in result.data] == [384, 384]


async def test_two_users_at_once_take_turns(
    llm_server: ThreadedServer, make_llm_user: UserFactory, llm_client: httpx.AsyncClient
) -> None:
    """A big batch does not make another user's small one wait for all of it: the two share the
    document lane a batch at a time, and each gets its own texts' vectors."""
    heavy, light = await make_llm_user("heavy"), await make_llm_user("light")
    big = [f"Report {i}: " + "harbour soup and lighthouses by the sea " * 12 for i in range(96)]
    small = ["a short question", "another one"]
    expected_small = await embedder_of(llm_server).embed_documents(small)
    finished: dict[str, float] = {}

    async def run(who: TestUser, texts: list[str]) -> Any:
        result = await sdk(llm_server, who.access_token).embeddings.create(
            model="default", input=texts, encoding_format="float", timeout=120
        )
        finished[who.email] = time.monotonic()
        return result

    big_task = asyncio.create_task(run(heavy, big))
    await asyncio.sleep(0.3)  # the big batch is on the lane
    small_result = await run(light, small)
    assert not big_task.done(), "the small request waited for the whole big batch"
    big_result = await big_task
    assert finished[light.email] < finished[heavy.email]
    assert len(big_result.data) == len(big)
    for item, vector in zip(small_result.data, expected_small, strict=True):
        assert item.embedding == pytest.approx(vector, abs=1e-6)
    spot = await embedder_of(llm_server).embed_documents([big[0], big[-1]])
    assert big_result.data[0].embedding == pytest.approx(spot[0], abs=1e-6)
    assert big_result.data[-1].embedding == pytest.approx(spot[1], abs=1e-6)


async def _bad_request(client: openai.AsyncOpenAI, **request: Any) -> dict[str, Any]:
    request.setdefault("model", "default")
    with pytest.raises(openai.BadRequestError) as error:
        await client.embeddings.create(**request)
    assert error.value.status_code == 400
    body = error.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    assert body["message"]
    return body


async def test_bad_input_is_400_naming_the_param(llm_server: ThreadedServer, api_key: str) -> None:
    client = sdk(llm_server, api_key)
    too_long = "lighthouse " * 300  # > 256 word pieces: refused, never cut
    cases: list[tuple[dict[str, Any], str]] = [
        ({"input": ["fine", too_long]}, "input[1]"),
        ({"input": too_long}, "input"),
        ({"input": ["fine", "also fine", ""]}, "input[2]"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["x"] * 2049}, "input"),
        ({"input": [[101, 2023, 102]]}, "input"),  # token arrays
        ({"input": [101, 2023, 102]}, "input"),
        ({"input": ["text", 3]}, "input"),
        ({"input": "x", "dimensions": 256}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "extra_body": {"truncate": True}}, "truncate"),
    ]
    for request, param in cases:
        body = await _bad_request(client, **request)
        assert body["param"] == param, (request, body)
    body = await _bad_request(client, input=["fine", too_long])
    assert "is 302 tokens long" in body["message"]
    assert "at most 256" in body["message"]
    tokens = await _bad_request(client, input=[[1, 2, 3]])
    assert "Token arrays" in tokens["message"]
    # Exactly 256 word pieces (special tokens included) is within the limit.
    longest = "lighthouse " * 254
    assert model_tokens(longest) == 256
    result = await client.embeddings.create(model="default", input=longest)
    assert result.usage.prompt_tokens == 256


async def test_unknown_model_is_404_model_not_found(
    llm_server: ThreadedServer, api_key: str
) -> None:
    client = sdk(llm_server, api_key)
    for model in ("text-embedding-3-small", "openai:gpt-5.4-mini"):
        with pytest.raises(openai.NotFoundError) as error:
            await client.embeddings.create(model=model, input="x")
        assert error.value.code == "model_not_found"
        assert error.value.param == "model"
        assert error.value.body == {
            "message": f"The model '{model}' does not exist: embeddings are served by "
            f"'{embedder_of(llm_server).name}' (or 'default')",
            "type": "not_found_error",
            "param": "model",
            "code": "model_not_found",
        }


async def test_unauthenticated_is_401(
    llm_server: ThreadedServer, llm_client: httpx.AsyncClient
) -> None:
    with pytest.raises(openai.AuthenticationError):
        await sdk(llm_server, "sk-omni-forged").embeddings.create(model="default", input="x")
    r = await llm_client.post("/v1/embeddings", json={"model": "default", "input": "x"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    for path in ("/v1/models", "/v1/models/default"):
        assert (await llm_client.get(path)).status_code == 401


async def test_models_list_and_lookup(llm_server: ThreadedServer, api_key: str) -> None:
    client = sdk(llm_server, api_key)
    embedder = embedder_of(llm_server)
    listed = [model async for model in client.models.list()]
    ids = [model.id for model in listed]
    assert "openai:gpt-5.4-mini" in ids
    assert embedder.name in ids
    for model in listed:
        found = await client.models.retrieve(model.id)
        assert found.model_dump() == model.model_dump()
        assert (found.object, found.created) == ("model", 0)
    embedding_model = await client.models.retrieve(embedder.name)
    assert embedding_model.owned_by == "local"
    chat_model = await client.models.retrieve("anthropic:claude-sonnet-5-5")
    assert chat_model.owned_by == "anthropic"
    # Aliases are not ids; a slash reaches the lookup too (the SDK percent-encodes it).
    for missing in ("claude", "default", "nope", "openrouter:meta-llama/llama-3.1-8b"):
        with pytest.raises(openai.NotFoundError) as error:
            await client.models.retrieve(missing)
        assert error.value.code == "model_not_found"
        assert error.value.param == "model"
