"""Embeddings through the Gemini API (google-genai, API-key mode)."""

from __future__ import annotations

from google import genai
from google.genai import types

from omnichat.llm.base import ProviderConfig, translate_error
from omnichat.rag.embedders.remote import EmbeddingModel, RemoteEmbedder


class GeminiEmbedder(RemoteEmbedder):
    max_batch = 100

    def __init__(self, model: EmbeddingModel, config: ProviderConfig, max_retries: int = 2):
        super().__init__(model)
        timeout_ms = int(max(config.idle_timeout_s, config.connect_timeout_s) * 1000)
        options = types.HttpOptions(
            base_url=config.base_url,
            timeout=timeout_ms,
            retry_options=types.HttpRetryOptions(attempts=max_retries + 1),
        )
        self._client = genai.Client(api_key=config.api_key, http_options=options)

    async def _embed_batch(self, texts: list[str], *, query: bool) -> list[list[float]]:
        config = types.EmbedContentConfig(
            task_type="RETRIEVAL_QUERY" if query else "RETRIEVAL_DOCUMENT",
            output_dimensionality=self.model.requested_dimensions,
        )
        # One Content per text: the Gemini API makes one embedding per Content.
        contents = [types.Content(role="user", parts=[types.Part(text=text)]) for text in texts]
        try:
            response = await self._client.aio.models.embed_content(
                model=self.model.model, contents=contents, config=config
            )
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        return [list(e.values or []) for e in response.embeddings or []]

    async def aclose(self) -> None:
        await self._client.aio.aclose()
