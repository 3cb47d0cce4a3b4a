"""Anthropic messages API (Claude).

Endings (``stop_reason``, anthropic SDK ``StopReason``; streamed on ``message_delta``):
``max_tokens``, ``model_context_window_exceeded`` -> length; ``tool_use`` -> tool_calls;
``refusal`` -> content_filter ("safety", or "safety (cyber)" with ``stop_details.category``);
``end_turn``, ``stop_sequence``, ``pause_turn``, none and anything else -> stop. A stream ends
with ``message_stop``; one without it was cut.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
from anthropic import AsyncAnthropic

from omnichat.errors import UnsupportedField
from omnichat.llm.base import ProviderConfig, stream_cut, translate_error
from omnichat.llm.finish import Ending, FinishMap
from omnichat.llm.types import (
    Completion,
    GenerationRequest,
    Sampling,
    StreamEvent,
    TextDelta,
    Usage,
)

# Anthropic requires max_tokens; used when the caller gives none.
DEFAULT_MAX_TOKENS = 4096
PROVIDER_NAME = "Anthropic"
# OpenAI's reasoning_effort as Anthropic's output_config.effort ("none": thinking disabled).
_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh"}
_NO_SAMPLING = "its API (version 2026-10-21) takes no sampling parameters"
_FINISH = FinishMap(
    length=frozenset({"max_tokens", "model_context_window_exceeded"}),
    tool_calls=frozenset({"tool_use"}),
    refusals={"refusal": "safety"},
)


def _ending(stop_reason: str | None, stop_details: Any) -> Ending:
    """``stop_details`` (``RefusalStopDetails``) names the policy ``category`` of a refusal."""
    ending = _FINISH(stop_reason)
    category = getattr(stop_details, "category", None)
    if ending.refusal and isinstance(category, str) and category:
        return ending._replace(refusal=f"{ending.refusal} ({category.replace('_', ' ')})")
    return ending


def _refuse_unsupported(sampling: Sampling) -> None:
    for name, value in (
        ("temperature", sampling.temperature),
        ("top_p", sampling.top_p),
        ("seed", sampling.seed),
        ("presence_penalty", sampling.presence_penalty),
        ("frequency_penalty", sampling.frequency_penalty),
    ):
        if value is not None:
            raise UnsupportedField(name, PROVIDER_NAME, "" if name == "seed" else _NO_SAMPLING)
    for name in sampling.openai_only:
        raise UnsupportedField(name, PROVIDER_NAME)
    if sampling.wants_json_object():
        raise UnsupportedField(
            "response_format",
            PROVIDER_NAME,
            'it has structured output by schema ("json_schema"), not JSON mode ("json_object")',
        )
    if sampling.reasoning_effort not in (None, "none", *_EFFORT):
        raise UnsupportedField("reasoning_effort", PROVIDER_NAME)


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

    def check(self, request: GenerationRequest) -> None:
        self._params(request)

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        """The Messages API body (anthropic SDK ``messages.create``). Instruction turns go to
        ``system``; consecutive turns of one role are sent as they are (the API joins them).
        Raises ``UnsupportedField`` for what Anthropic has no form of."""
        sampling = request.sampling
        _refuse_unsupported(sampling)
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [{"role": t.role, "content": t.content} for t in request.dialogue()],
        }
        system = request.instructions()
        if system:
            params["system"] = system
        if sampling.stop:
            params["stop_sequences"] = list(sampling.stop)
        output_config: dict[str, Any] = {}
        schema = sampling.json_schema()
        if schema is not None:
            output_config["format"] = {"type": "json_schema", "schema": dict(schema)}
        effort = sampling.reasoning_effort
        if effort == "none":
            params["thinking"] = {"type": "disabled"}
        elif effort is not None:
            output_config["effort"] = _EFFORT[effort]
        if output_config:
            params["output_config"] = output_config
        if sampling.end_user:
            params["metadata"] = {"user_id": sampling.end_user[1]}
        return params

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            message = await self._client.messages.create(**self._params(request))
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        text = "".join(block.text for block in message.content if block.type == "text")
        usage = Usage(message.usage.input_tokens, message.usage.output_tokens)
        return _ending(message.stop_reason, message.stop_details).completion(text, usage)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        input_tokens: int | None = None
        output_tokens: int | None = None
        ending = Ending()
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
                        ending = _ending(event.delta.stop_reason, event.delta.stop_details)
                elif event.type == "message_stop":
                    finished = True
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        if not finished:
            raise stream_cut(self.provider)
        yield ending.stream_end(Usage(input_tokens, output_tokens))
