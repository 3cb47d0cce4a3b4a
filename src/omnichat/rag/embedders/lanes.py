"""Two lanes for a local embedder: one thread for document batches, one for queries.

A question's embedding must not wait behind an upload's batch: each lane is its own
single-thread executor, so a query starts at once whatever the document lane is doing (the
model runs both at the same time; both local models allow concurrent calls). Within a lane,
calls run one after another in the order they came, which keeps one big batch from competing
with itself for the cores; choosing whose batch goes next is for the caller.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class EmbeddingLanes:
    def __init__(self, prefix: str) -> None:
        self.documents = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{prefix}-documents")
        self.queries = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{prefix}-query")

    async def run_documents(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.documents, function, *args)

    async def run_query(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.queries, function, *args)

    def shutdown(self) -> None:
        for executor in (self.documents, self.queries):
            executor.shutdown(wait=False, cancel_futures=True)


class LanedLocalEmbedder(ABC):
    """An in-process model behind the ``Embedder`` protocol: ``load`` and ``encode`` are
    blocking (run on the lanes' threads), the rest is shared by every local embedder."""

    def __init__(self, lane_prefix: str) -> None:
        self._lanes = EmbeddingLanes(lane_prefix)

    @abstractmethod
    def load(self) -> Any:
        """Load the model once (later calls return at once); thread-safe."""

    @abstractmethod
    def encode(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors for ``texts``, in order; thread-safe."""

    async def warm_up(self) -> None:
        await self._lanes.run_documents(self.load)

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return await self._lanes.run_documents(self.encode, list(texts))

    async def embed_query(self, text: str) -> list[float]:
        return (await self._lanes.run_query(self.encode, [text]))[0]

    async def aclose(self) -> None:
        self._lanes.shutdown()
