"""Anthropic messages API (Claude)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
from anthropic import AsyncAnthropic

from omnichat.llm.base import ProviderConfig, stream_cut, translate_error
from omnichat.llm.types import (
    Completion,
    GenerationRequest,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)

# Anthropic requires max_tokens; used when the caller gives none.
DEFAULT_MAX_TOKENS = 4096
_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class AnthropicChatModel:
    def __init__(self, config: ProviderConfig) -> None:
        self.provider = config.name
        self._client = AsyncAnthropic(
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=anthropic.Timeout(**config.timeout_arguments()),
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "messages": [{"role": t.role, "content": t.content} for t in request.messages],
            **request.sampling(),
        }
        if request.system:
            params["system"] = request.system
        return params

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            message = await self._client.messages.create(**self._params(request))
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        text = "".join(block.text for block in message.content if block.type == "text")
        return Completion(
            text=text,
            finish_reason=_FINISH_REASONS.get(message.stop_reason or "", "stop"),
            usage=Usage(message.usage.input_tokens, message.usage.output_tokens),
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        input_tokens: int | None = None
        output_tokens: int | None = None
        finish_reason = "stop"
        finished = False
        try:
            stream = await self._client.messages.create(**self._params(request), stream=True)
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield TextDelta(event.delta.text)
                elif event.type == "message_start":
                    input_tokens = event.message.usage.input_tokens
                elif event.type == "message_delta":
                    output_tokens = event.usage.output_tokens
                    if event.delta.stop_reason:
                        finish_reason = _FINISH_REASONS.get(event.delta.stop_reason, "stop")
                elif event.type == "message_stop":
                    finished = True
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        if not finished:
            raise stream_cut(self.provider)
        yield StreamEnd(finish_reason=finish_reason, usage=Usage(input_tokens, output_tokens))
