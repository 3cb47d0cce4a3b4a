"""What the embedders behind a provider's API share: model specs, known dimensions, batching in
order, and the checks on what comes back."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from omnichat.llm.errors import ProviderError

# Native output sizes. A model not listed needs its size in the spec: "openai:my-model:768".
KNOWN_DIMENSIONS: dict[str, dict[str, int]] = {
    "openai": {
        "text-embedding-3-small": 1536,
        "text-embedding-3-large": 3072,
        "text-embedding-ada-002": 1536,
    },
    "cohere": {
        "embed-v4.0": 1536,
        "embed-english-v3.0": 1024,
        "embed-multilingual-v3.0": 1024,
    },
    "gemini": {"gemini-embedding-001": 3072, "text-embedding-004": 768},
}


@dataclass(frozen=True)
class EmbeddingModel:
    """A ``provider:model[:dims]`` spec, resolved. ``requested_dimensions`` is set when a known
    model is asked for a size other than its native one (the API shortens the vectors);
    for a model not in the table the suffix only declares its size."""

    provider: str
    model: str
    dimension: int
    requested_dimensions: int | None

    @property
    def name(self) -> str:
        base = f"{self.provider}:{self.model}"
        return f"{base}:{self.dimension}" if self.requested_dimensions else base

    @classmethod
    def parse(cls, provider: str, spec: str) -> EmbeddingModel:
        model, _, last = spec.rpartition(":")
        if model and last.isdigit():
            dims: int | None = int(last)
        else:
            model, dims = spec, None
        model = model.strip().removeprefix("models/")
        if not model:
            raise ValueError(f"OMNICHAT_EMBEDDER={provider}:{spec}: no model named")
        if dims is not None and not 1 <= dims <= 65536:
            raise ValueError(f"OMNICHAT_EMBEDDER={provider}:{spec}: bad dimension {dims}")
        native = KNOWN_DIMENSIONS.get(provider, {}).get(model)
        if native is None and dims is None:
            known = ", ".join(sorted(KNOWN_DIMENSIONS.get(provider, {})))
            raise ValueError(
                f"OMNICHAT_EMBEDDER={provider}:{spec}: the vector size of '{model}' is not known; "
                f"name it as {provider}:{model}:<dimensions> (known models: {known})"
            )
        dimension = dims if dims is not None else native
        assert dimension is not None
        requested = dims if native is not None and dims is not None and dims != native else None
        return cls(provider, model, dimension, requested)


def unit(vector: Sequence[float]) -> list[float]:
    """``vector`` scaled to length 1 (providers' shortened vectors are not normalised)."""
    norm = math.sqrt(math.fsum(v * v for v in vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise ValueError("cannot normalise a zero or non-finite vector")
    return [float(v) / norm for v in vector]


def batches(texts: Sequence[str], max_count: int, max_chars: int | None) -> Iterator[list[str]]:
    """Consecutive runs of ``texts`` of at most ``max_count`` items and (where given) about
    ``max_chars`` characters; a text longer than that alone makes a batch of one."""
    batch: list[str] = []
    chars = 0
    for text in texts:
        if batch and (
            len(batch) >= max_count or (max_chars is not None and chars + len(text) > max_chars)
        ):
            yield batch
            batch, chars = [], 0
        batch.append(text)
        chars += len(text)
    if batch:
        yield batch


class RemoteEmbedder:
    """Subclasses implement ``_embed_batch``; this sends batches one after another (in order, so
    a provider's rate limit sees a steady stream) and checks and normalises what comes back."""

    max_batch: int = 96
    max_batch_chars: int | None = None

    def __init__(self, model: EmbeddingModel) -> None:
        self.model = model
        self.provider = model.provider
        self.name = model.name
        self.dimension = model.dimension

    async def _embed_batch(self, texts: list[str], *, query: bool) -> list[list[float]]:
        raise NotImplementedError

    async def _embed(self, texts: Sequence[str], *, query: bool) -> list[list[float]]:
        vectors: list[list[float]] = []
        for batch in batches(texts, self.max_batch, self.max_batch_chars):
            answer = await self._embed_batch(batch, query=query)
            if len(answer) != len(batch):
                raise ProviderError(
                    f"asked for {len(batch)} embeddings, got {len(answer)}", provider=self.provider
                )
            for vector in answer:
                if len(vector) != self.dimension:
                    raise ProviderError(
                        f"{self.name} returned {len(vector)}-dimensional vectors, expected "
                        f"{self.dimension}",
                        provider=self.provider,
                    )
                try:
                    vectors.append(unit(vector))
                except ValueError as exc:
                    raise ProviderError(str(exc), provider=self.provider) from exc
        return vectors

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._embed(texts, query=False)

    async def embed_query(self, text: str) -> list[float]:
        return (await self._embed([text], query=True))[0]

    async def aclose(self) -> None:
        """Close the SDK client's connections."""
