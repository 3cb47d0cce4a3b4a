"""A question grounded in the asker's documents: the text the model gets, the rule it is given
about that text, and the sources clients are shown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omnichat.rag.prompt import SYSTEM_NOTE, grounded_question, sources_payload
from omnichat.rag.retrieval import Retriever


@dataclass(frozen=True)
class Grounding:
    model_text: str
    system_note: str
    sources: list[dict[str, Any]]


class Grounder:
    def __init__(self, retriever: Retriever) -> None:
        self._retriever = retriever

    async def ground(self, user_id: str, question: str) -> Grounding | None:
        """None when the user has no ready documents: the question goes to the model as is."""
        if not await self._retriever.has_documents(user_id):
            return None
        chunks = await self._retriever.retrieve(user_id, question)
        return Grounding(
            model_text=grounded_question(question, chunks),
            system_note=SYSTEM_NOTE,
            sources=sources_payload(chunks),
        )
