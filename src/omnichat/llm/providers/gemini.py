"""Google Gemini through google-genai (API-key mode)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
from google import genai
from google.genai import types

from omnichat.llm.base import ProviderConfig, stream_cut, translate_error
from omnichat.llm.types import (
    Completion,
    GenerationRequest,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)

_FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}


def _usage(metadata: Any) -> Usage:
    if metadata is None:
        return Usage()
    return Usage(metadata.prompt_token_count, metadata.candidates_token_count)


def _finish_reason(response: Any) -> str | None:
    for candidate in response.candidates or ():
        if candidate.finish_reason is not None:
            reason = getattr(candidate.finish_reason, "value", str(candidate.finish_reason))
            return _FINISH_REASONS.get(reason, reason.lower())
    return None


def _text(response: Any) -> str:
    parts = []
    for candidate in response.candidates[:1] if response.candidates else ():
        for part in candidate.content.parts or () if candidate.content else ():
            if part.text and not part.thought:
                parts.append(part.text)
    return "".join(parts)


class GeminiChatModel:
    def __init__(self, config: ProviderConfig) -> None:
        self.provider = config.name
        timeout_ms = int(max(config.idle_timeout_s, config.connect_timeout_s) * 1000)
        options = types.HttpOptions(
            base_url=config.base_url,
            timeout=timeout_ms,
            # google-genai switches to aiohttp by itself whenever aiohttp is installed (it is,
            # for OpenAI's transport), with other errors and timeout semantics; a transport of
            # our choosing keeps it on httpx2, the backend its error handling here is built for.
            async_client_args={"transport": httpx2.AsyncHTTPTransport()},
        )
        self._client = genai.Client(api_key=config.api_key, http_options=options)

    async def aclose(self) -> None:
        await self._client.aio.aclose()

    def _arguments(self, request: GenerationRequest) -> dict[str, Any]:
        contents = [
            types.Content(
                role="model" if turn.role == "assistant" else "user",
                parts=[types.Part(text=turn.content)],
            )
            for turn in request.messages
        ]
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            max_output_tokens=request.max_tokens,
            temperature=request.temperature,
        )
        return {"model": request.model, "contents": contents, "config": config}

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            response = await self._client.aio.models.generate_content(**self._arguments(request))
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        return Completion(
            text=_text(response),
            finish_reason=_finish_reason(response) or "stop",
            usage=_usage(response.usage_metadata),
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        finish_reason: str | None = None
        usage = Usage()
        try:
            stream = await self._client.aio.models.generate_content_stream(
                **self._arguments(request)
            )
            async for response in stream:
                text = _text(response)
                if text:
                    yield TextDelta(text)
                if response.usage_metadata is not None:
                    usage = _usage(response.usage_metadata)
                finish_reason = _finish_reason(response) or finish_reason
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        if finish_reason is None:
            raise stream_cut(self.provider)
        yield StreamEnd(finish_reason=finish_reason, usage=usage)
