"""The vector index's identity: which embedder and dimension it was built with.

Vectors from two embedders cannot be compared, so the index records its embedder; after a
change of ``OMNICHAT_EMBEDDER`` searches and ingestion refuse with a clear 503 until
``omnichat reindex`` has rebuilt it.
"""

from __future__ import annotations

import logging

from omnichat.db.engine import Database
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.models import IndexInfo
from omnichat.errors import ServiceUnavailable
from omnichat.rag.embedders.base import Embedder
from omnichat.rag.vectors.base import VectorStore

logger = logging.getLogger("omnichat.rag")
INDEX_NAME = "chunks"


class VectorIndex:
    def __init__(self, database: Database, store: VectorStore, embedder: Embedder) -> None:
        self._database = database
        self.store = store
        self.embedder = embedder
        self.mismatch: str | None = None

    async def start(self) -> None:
        """Create the index on first start; notice an embedder change on later ones."""
        async with unit_of_work(self._database.writer) as db:
            info = await db.get(IndexInfo, INDEX_NAME)
            adapt_to = getattr(self.embedder, "adapt_to", None)
            if info is not None and adapt_to is not None:
                adapt_to(info.embedder)
            if info is None:
                db.add(
                    IndexInfo(
                        name=INDEX_NAME,
                        embedder=self.embedder.name,
                        dimension=self.embedder.dimension,
                    )
                )
            elif (info.embedder, info.dimension) != (self.embedder.name, self.embedder.dimension):
                self.mismatch = (
                    f"The document index was built with {info.embedder} ({info.dimension} "
                    f"dimensions) but the configured embedder is {self.embedder.name}; "
                    "run `omnichat reindex`"
                )
                logger.error(self.mismatch)
                return
        await self.store.prepare(self.embedder.dimension)

    def check_usable(self) -> None:
        if self.mismatch:
            raise ServiceUnavailable(self.mismatch)

    async def record_rebuilt(self) -> None:
        async with unit_of_work(self._database.writer) as db:
            info = await db.get(IndexInfo, INDEX_NAME)
            if info is None:
                info = IndexInfo(name=INDEX_NAME, embedder="", dimension=0)
                db.add(info)
            info.embedder = self.embedder.name
            info.dimension = self.embedder.dimension
        self.mismatch = None
