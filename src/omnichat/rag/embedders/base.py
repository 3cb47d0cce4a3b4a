"""The ``Embedder`` protocol: text in, unit-length vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Embedder(Protocol):
    """Turns text into vectors of ``dimension`` floats, normalised to unit length (so cosine
    similarity is a dot product). ``name`` (``provider:model``) is recorded with the index so a
    change of embedder is noticed. Implementations batch and never block the event loop."""

    name: str
    dimension: int

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def embed_query(self, text: str) -> list[float]: ...
