"""Google Gemini through google-genai (API-key mode).

Endings: a candidate's ``finishReason`` (google-genai ``types.FinishReason``) ends the reply, in
a stream too: ``MAX_TOKENS``, ``CONTINUATION`` -> length; the block values (``_FINISH``'s
refusals: ``SAFETY``, ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``, ...) ->
content_filter; ``STOP``, ``OTHER`` and anything else -> stop (Gemini has no tool-use value: a
function call ends with ``STOP``). A response with ``promptFeedback.blockReason``
(``types.BlockedReason``) and no candidates is a blocked prompt: content_filter ("prompt
blocked: safety"). A stream whose body ends without either was cut.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
from google import genai
from google.genai import types

from omnichat.llm.base import ProviderConfig, stream_cut, translate_error
from omnichat.llm.finish import Ending, FinishMap, native_value
from omnichat.llm.types import (
    CONTENT_FILTER,
    Completion,
    GenerationRequest,
    StreamEvent,
    TextDelta,
    Usage,
)

_FINISH = FinishMap(
    length=frozenset({"MAX_TOKENS", "CONTINUATION"}),
    refusals={
        "SAFETY": "safety",
        "RECITATION": "recitation",
        "LANGUAGE": "unsupported language",
        "BLOCKLIST": "blocklist",
        "PROHIBITED_CONTENT": "prohibited content",
        "SPII": "sensitive personal information",
        "IMAGE_SAFETY": "image safety",
        "IMAGE_PROHIBITED_CONTENT": "prohibited image content",
        "IMAGE_RECITATION": "image recitation",
        "MODEL_ARMOR": "model armor",
        "ESCALATION": "escalation rule",
        "PUP_LIMITED_DISABLED": "prohibited use policy",
    },
)
# promptFeedback.blockReason; BLOCKED_REASON_UNSPECIFIED and unknown values: just "prompt blocked".
_BLOCK_REASONS = {
    "SAFETY": "safety",
    "OTHER": "other",
    "BLOCKLIST": "blocklist",
    "PROHIBITED_CONTENT": "prohibited content",
    "IMAGE_SAFETY": "image safety",
    "MODEL_ARMOR": "model armor",
    "JAILBREAK": "jailbreak",
}


def _usage(metadata: Any) -> Usage:
    if metadata is None:
        return Usage()
    return Usage(metadata.prompt_token_count, metadata.candidates_token_count)


def _ending(response: Any) -> Ending | None:
    """How ``response`` (a ``GenerateContentResponse``, or one chunk of a stream) ends the reply;
    None while it goes on."""
    for candidate in response.candidates or ():
        if candidate.finish_reason is not None:
            return _FINISH(candidate.finish_reason)
    feedback = response.prompt_feedback
    if not response.candidates and feedback is not None and feedback.block_reason is not None:
        reason = _BLOCK_REASONS.get(native_value(feedback.block_reason))
        return Ending(CONTENT_FILTER, f"prompt blocked: {reason}" if reason else "prompt blocked")
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
        ending = _ending(response) or Ending()
        return ending.completion(_text(response), _usage(response.usage_metadata))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        ending: Ending | None = None
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
                ending = _ending(response) or ending
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        if ending is None:
            raise stream_cut(self.provider)
        yield ending.stream_end(usage)
