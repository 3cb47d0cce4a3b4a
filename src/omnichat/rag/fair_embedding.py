"""The embedder as ingestion shares it: document batches take turns across users, one batch at
a time, so one user's 500-page upload costs another user's document a batch's wait, not the
whole upload's. A question's embedding does not queue here at all: it goes straight to the
embedder, which runs it on a lane of its own (see each embedder's ``embed_query``)."""

from __future__ import annotations

from collections.abc import Sequence

from omnichat.fairness import FairSlots
from omnichat.rag.embedders.base import Embedder


class FairDocumentEmbedding:
    def __init__(self, embedder: Embedder, batch_size: int) -> None:
        self.embedder = embedder
        self.batch_size = batch_size
        self._documents = FairSlots(1)

    async def embed_documents_for(self, owner: str, texts: Sequence[str]) -> list[list[float]]:
        """``texts``' vectors, in order, embedded ``batch_size`` at a time on ``owner``'s turns.
        Cancelling stops before the next batch."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            async with self._documents.slot(owner):
                batch = texts[start : start + self.batch_size]
                vectors.extend(await self.embedder.embed_documents(batch))
        return vectors
