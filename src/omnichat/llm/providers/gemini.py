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

from omnichat.errors import UnsupportedField
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

PROVIDER_NAME = "Gemini"
_THINKING_LEVELS = {
    "minimal": types.ThinkingLevel.MINIMAL,
    "low": types.ThinkingLevel.LOW,
    "medium": types.ThinkingLevel.MEDIUM,
    "high": types.ThinkingLevel.HIGH,
    "xhigh": types.ThinkingLevel.XHIGH,
}
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


def _thinking(effort: str | None) -> types.ThinkingConfig | None:
    """OpenAI's reasoning_effort as Gemini's thinking level ("none": a thinking budget of 0)."""
    if effort is None:
        return None
    if effort == "none":
        return types.ThinkingConfig(thinking_budget=0)
    level = _THINKING_LEVELS.get(effort)
    if level is None:
        raise UnsupportedField("reasoning_effort", PROVIDER_NAME)
    return types.ThinkingConfig(thinking_level=level)


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

    def check(self, request: GenerationRequest) -> None:
        self._arguments(request)

    def _arguments(self, request: GenerationRequest) -> dict[str, Any]:
        """``generate_content``'s arguments. Instruction turns go to ``system_instruction``, and
        consecutive turns of one role become one ``Content`` of several parts (Gemini wants the
        roles to alternate). Raises ``UnsupportedField`` for what Gemini has no form of."""
        sampling = request.sampling
        for name in sampling.openai_only:
            raise UnsupportedField(name, PROVIDER_NAME)
        contents: list[types.Content] = []
        for turn in request.dialogue():
            role = "model" if turn.role == "assistant" else "user"
            if contents and contents[-1].role == role and contents[-1].parts is not None:
                contents[-1].parts.append(types.Part(text=turn.content))
            else:
                contents.append(types.Content(role=role, parts=[types.Part(text=turn.content)]))
        schema = sampling.json_schema()
        config = types.GenerateContentConfig(
            system_instruction=request.instructions(),
            max_output_tokens=request.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop_sequences=list(sampling.stop) or None,
            seed=sampling.seed,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
            response_mime_type=(
                "application/json" if schema is not None or sampling.wants_json_object() else None
            ),
            response_json_schema=dict(schema) if schema else None,
            thinking_config=_thinking(sampling.reasoning_effort),
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
