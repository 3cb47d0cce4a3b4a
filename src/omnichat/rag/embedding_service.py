"""Text embedded on request (``POST /v1/embeddings``) by the configured embedder, through the same
per-user fair lane as document ingestion: one user's 2048 texts cost another user's request (or
upload) one batch's wait, not the whole batch's.

Nothing is cut: a text longer than the model reads is refused, naming it, rather than embedded
from its first part only. Tokens are counted with the chunker's tokenizer, which is the local
model's own; a remote embedder checks its own limit, and its usage is counted the same way (an
estimate: its tokenizer is not here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from omnichat.errors import BadRequest, NotFound
from omnichat.rag.chunking import Chunker
from omnichat.rag.fair_embedding import FairDocumentEmbedding

# Texts per request, as OpenAI allows.
MAX_INPUTS = 2048
# A bound on each text before it is tokenized; a local model's token limit is far lower.
MAX_INPUT_CHARS = 200_000
# The name that always means the configured embedder.
DEFAULT_ALIAS = "default"


@dataclass(frozen=True)
class Embedded:
    model: str
    vectors: list[list[float]]
    tokens: int


class EmbeddingService:
    def __init__(self, lane: FairDocumentEmbedding, chunker: Chunker) -> None:
        self._lane = lane
        self._chunker = chunker

    @property
    def model(self) -> str:
        """The embedder's name as the index records it (``local:all-MiniLM-L6-v2:int8``). Read
        each time: the local embedder settles its precision when the index starts."""
        return self._lane.embedder.name

    @property
    def provider(self) -> str:
        return self.model.split(":", 1)[0]

    @property
    def dimension(self) -> int:
        return self._lane.embedder.dimension

    @property
    def max_input_tokens(self) -> int | None:
        """The tokens the model reads per text, special tokens included; None for a remote
        embedder (its provider enforces its own)."""
        limit = getattr(self._lane.embedder, "max_tokens", None)
        return limit if isinstance(limit, int) else None

    def resolve(self, name: str) -> str:
        """The embedder's name for ``name``: that name itself, ``default``, or the bare model
        name (``all-MiniLM-L6-v2``), in any case. Anything else is OpenAI's 404."""
        model = self.model
        bare = model.split(":")[1] if ":" in model else model
        if name.strip().lower() in {model.lower(), bare.lower(), DEFAULT_ALIAS}:
            return model
        raise NotFound(
            f"The model '{name}' does not exist: embeddings are served by '{model}' "
            f"(or '{DEFAULT_ALIAS}')",
            param="model",
            code="model_not_found",
        )

    async def embed(
        self,
        owner: str,
        texts: Sequence[str],
        *,
        single: bool = False,
        dimensions: int | None = None,
    ) -> Embedded:
        """``texts``' unit vectors, in order, on ``owner``'s turns of the document lane.
        ``single``: the request's ``input`` was one string (errors name ``input``, not
        ``input[0]``)."""

        def param(index: int) -> str:
            return "input" if single else f"input[{index}]"

        if dimensions is not None and dimensions != self.dimension:
            raise BadRequest(
                f"{self.model} makes {self.dimension}-dimensional vectors only; "
                f"dimensions={dimensions} cannot be served",
                param="dimensions",
            )
        if not texts:
            raise BadRequest("input must not be empty", param="input")
        if len(texts) > MAX_INPUTS:
            raise BadRequest(f"input holds at most {MAX_INPUTS} texts", param="input")
        for index, text in enumerate(texts):
            if not text:
                raise BadRequest(f"{param(index)} is empty", param=param(index))
            if len(text) > MAX_INPUT_CHARS:
                raise BadRequest(
                    f"{param(index)} is longer than {MAX_INPUT_CHARS} characters",
                    param=param(index),
                )
        counts = await asyncio.to_thread(self._chunker.count_model_tokens, list(texts))
        limit = self.max_input_tokens
        if limit is not None:
            for index, count in enumerate(counts):
                if count > limit:
                    raise BadRequest(
                        f"{param(index)} is {count} tokens long; {self.model} reads at most "
                        f"{limit} (special tokens included) and nothing is cut: split it",
                        param=param(index),
                    )
        model = self.model
        vectors = await self._lane.embed_documents_for(owner, texts)
        return Embedded(model, vectors, sum(counts))
