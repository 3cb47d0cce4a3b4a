"""Embeddings through OpenAI's API, or any server that speaks it (Ollama, vLLM, LM Studio)."""

from __future__ import annotations

from typing import Any

import openai
from openai import AsyncOpenAI

from omnichat.llm.base import ProviderConfig, translate_error
from omnichat.rag.embedders.remote import EmbeddingModel, RemoteEmbedder


class OpenAIEmbedder(RemoteEmbedder):
    max_batch = 2048
    # OpenAI also caps a request at 300k tokens; characters bound that for nearly any text.
    max_batch_chars = 300_000

    def __init__(self, model: EmbeddingModel, config: ProviderConfig, max_retries: int = 2):
        super().__init__(model)
        self._client = AsyncOpenAI(
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=max_retries,
            timeout=openai.Timeout(**config.timeout_arguments()),
        )

    async def _embed_batch(self, texts: list[str], *, query: bool) -> list[list[float]]:
        extra: dict[str, Any] = {}
        if self.model.requested_dimensions is not None:
            extra["dimensions"] = self.model.requested_dimensions
        try:
            response = await self._client.embeddings.create(
                model=self.model.model, input=texts, encoding_format="float", **extra
            )
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        ordered = sorted(response.data, key=lambda item: item.index)
        return [item.embedding for item in ordered]

    async def aclose(self) -> None:
        await self._client.close()
