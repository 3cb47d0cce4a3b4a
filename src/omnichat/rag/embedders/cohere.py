"""Embeddings through Cohere's v2 embed API."""

from __future__ import annotations

from typing import Any

import cohere
import httpx

from omnichat.llm.base import ProviderConfig, translate_error
from omnichat.rag.embedders.remote import EmbeddingModel, RemoteEmbedder


class CohereEmbedder(RemoteEmbedder):
    max_batch = 96

    def __init__(self, model: EmbeddingModel, config: ProviderConfig, max_retries: int = 2):
        super().__init__(model)
        # Our own httpx client: the SDK offers no way to close the one it would make.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(**config.timeout_arguments()))
        self._client = cohere.AsyncClientV2(
            api_key=config.api_key,
            base_url=config.base_url or "https://api.cohere.com",
            timeout=config.idle_timeout_s,
            httpx_client=self._http,
        )
        self._request_options: Any = {"max_retries": max_retries}

    async def _embed_batch(self, texts: list[str], *, query: bool) -> list[list[float]]:
        extra: dict[str, Any] = {}
        if self.model.requested_dimensions is not None:
            extra["output_dimension"] = self.model.requested_dimensions
        try:
            response = await self._client.embed(
                texts=texts,
                model=self.model.model,
                input_type="search_query" if query else "search_document",
                embedding_types=["float"],
                request_options=self._request_options,
                **extra,
            )
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        return list(response.embeddings.float_ or [])

    async def aclose(self) -> None:
        await self._http.aclose()
