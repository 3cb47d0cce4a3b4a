"""A question grounded in the asker's documents: the text the model gets, the rule it is given
about that text, and the sources clients are shown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from omnichat.rag.prompt import grounded_question, new_frame_nonce, sources_payload, sources_rule
from omnichat.rag.retrieval import RetrievedChunk, Retriever


@dataclass(frozen=True)
class Grounding:
    """The question with its passages (``model_text``), the rule about them for the system
    prompt (``system_note``), and ``sources`` as clients see them, numbered as in
    ``model_text``. ``nonce`` frames the passages: one per question, kept by ``top``."""

    question: str
    chunks: Sequence[RetrievedChunk]
    nonce: str = field(default_factory=new_frame_nonce)

    @property
    def model_text(self) -> str:
        return grounded_question(self.question, self.chunks, self.nonce)

    @property
    def system_note(self) -> str:
        return sources_rule(self.nonce)

    @property
    def sources(self) -> list[dict[str, Any]]:
        return sources_payload(self.chunks)

    def top(self, count: int) -> Grounding:
        """The same with only the ``count`` best passages."""
        return replace(self, chunks=self.chunks[:count])


class Grounder:
    def __init__(self, retriever: Retriever) -> None:
        self._retriever = retriever

    async def ground(self, user_id: str, question: str) -> Grounding | None:
        """None when the user has no ready documents: the question goes to the model as is."""
        if not await self._retriever.has_documents(user_id):
            return None
        return Grounding(question, await self._retriever.retrieve(user_id, question))
