"""Cohere v2 chat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import cohere

from omnichat.llm.base import ProviderConfig, stream_cut, translate_error
from omnichat.llm.types import (
    Completion,
    GenerationRequest,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)

_FINISH_REASONS = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length"}
_NO_RETRIES: dict[str, Any] = {"max_retries": 0}


def _usage(usage: Any) -> Usage:
    tokens = getattr(usage, "tokens", None) or getattr(usage, "billed_units", None)
    if tokens is None:
        return Usage()
    input_tokens = getattr(tokens, "input_tokens", None)
    output_tokens = getattr(tokens, "output_tokens", None)
    return Usage(
        int(input_tokens) if input_tokens is not None else None,
        int(output_tokens) if output_tokens is not None else None,
    )


class CohereChatModel:
    def __init__(self, config: ProviderConfig) -> None:
        self.provider = config.name
        self._client = cohere.AsyncClientV2(
            api_key=config.api_key,
            base_url=config.base_url or "https://api.cohere.com",
            timeout=config.idle_timeout_s,
            max_retries=0,
        )

    async def aclose(self) -> None:
        await self._client.__aexit__(None, None, None)  # type: ignore[no-untyped-call]

    def _arguments(self, request: GenerationRequest) -> dict[str, Any]:
        messages: list[Any] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": t.role, "content": t.content} for t in request.messages)
        return {
            "model": request.model,
            "messages": messages,
            "request_options": _NO_RETRIES,
            **request.sampling(),
        }

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            response = await self._client.chat(**self._arguments(request))
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        content = response.message.content or [] if response.message else []
        text = "".join(getattr(item, "text", "") or "" for item in content)
        return Completion(
            text=text,
            finish_reason=_FINISH_REASONS.get(str(response.finish_reason), "stop"),
            usage=_usage(response.usage),
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        end: StreamEnd | None = None
        try:
            async for event in self._client.chat_stream(**self._arguments(request)):
                if event.type == "content-delta":
                    text = event.delta.message.content.text  # type: ignore[union-attr]
                    if text:
                        yield TextDelta(text)
                elif event.type == "message-end":
                    delta = event.delta
                    end = StreamEnd(
                        finish_reason=_FINISH_REASONS.get(str(delta.finish_reason), "stop")
                        if delta
                        else "stop",
                        usage=_usage(delta.usage) if delta else Usage(),
                    )
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        if end is None:
            raise stream_cut(self.provider)
        yield end
