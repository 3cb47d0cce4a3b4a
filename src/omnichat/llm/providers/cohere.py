"""Cohere v2 chat.

Endings (``finish_reason``, cohere SDK ``ChatFinishReason``; streamed on ``message-end``):
``MAX_TOKENS`` (and v1's ``ERROR_LIMIT``) -> length; ``TOOL_CALL`` -> tool_calls; v1's
``ERROR_TOXIC`` (v2 has no toxic value of its own, its type admits any string) -> content_filter
("toxic content"); ``COMPLETE``, ``STOP_SEQUENCE``, none and anything else -> stop. ``ERROR`` and
``TIMEOUT`` are the provider's own failures, raised as such (the message-end ``delta.error`` says
why). A stream ends with ``message-end``; one without it was cut.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import cohere

from omnichat.errors import UnsupportedField
from omnichat.llm.base import ProviderConfig, stream_cut, translate_error
from omnichat.llm.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from omnichat.llm.finish import FinishMap, native_value
from omnichat.llm.types import (
    INSTRUCTION_ROLES,
    Completion,
    GenerationRequest,
    Sampling,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)

_FINISH = FinishMap(
    length=frozenset({"MAX_TOKENS", "ERROR_LIMIT"}),
    tool_calls=frozenset({"TOOL_CALL"}),
    refusals={"ERROR_TOXIC": "toxic content"},
)
_NO_RETRIES: dict[str, Any] = {"max_retries": 0}
PROVIDER_NAME = "Cohere"
_THINKING_BUDGETS = {"minimal": 512, "low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}


def _failure(finish_reason: object, error: str | None, provider: str) -> ProviderError | None:
    """``ERROR``/``TIMEOUT``: the reply failed, whatever text came before it."""
    value = native_value(finish_reason)
    if value == "TIMEOUT":
        return ProviderTimeout(error or "the provider timed out while replying", provider=provider)
    if value == "ERROR":
        return ProviderUnavailable(error or "the provider failed while replying", provider=provider)
    return None


def _stream_end(delta: Any, provider: str) -> StreamEnd:
    """From ``message-end``'s ``delta`` (``ChatMessageEndEventDelta``: finish_reason, error,
    usage), or raises the failure it reports."""
    if delta is None:
        return StreamEnd()
    failure = _failure(delta.finish_reason, delta.error, provider)
    if failure is not None:
        raise failure
    return _FINISH(delta.finish_reason).stream_end(_usage(delta.usage))


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


def _response_format(sampling: Sampling) -> dict[str, Any] | None:
    """OpenAI's JSON mode or JSON schema as Cohere's ``json_object`` response format."""
    schema = sampling.json_schema()
    if schema is not None:
        return {"type": "json_object", "json_schema": dict(schema)}
    return {"type": "json_object"} if sampling.wants_json_object() else None


def _thinking(effort: str | None) -> dict[str, Any] | None:
    """OpenAI's reasoning_effort as Cohere's thinking token budget."""
    if effort is None:
        return None
    if effort == "none":
        return {"type": "disabled"}
    if effort not in _THINKING_BUDGETS:
        raise UnsupportedField("reasoning_effort", PROVIDER_NAME)
    return {"type": "enabled", "token_budget": _THINKING_BUDGETS[effort]}


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

    def check(self, request: GenerationRequest) -> None:
        self._arguments(request)

    def _arguments(self, request: GenerationRequest) -> dict[str, Any]:
        """``chat``'s arguments (Cohere v2). Instruction turns stay in place as ``system``
        messages. Raises ``UnsupportedField`` for what Cohere has no form of."""
        sampling = request.sampling
        for name in sampling.openai_only:
            raise UnsupportedField(name, PROVIDER_NAME)
        messages: list[Any] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend(
            {"role": "system" if t.role in INSTRUCTION_ROLES else t.role, "content": t.content}
            for t in request.messages
        )
        optional = {
            "max_tokens": request.max_tokens,
            "temperature": sampling.temperature,
            "p": sampling.top_p,
            "stop_sequences": list(sampling.stop) or None,
            "seed": sampling.seed,
            "presence_penalty": sampling.presence_penalty,
            "frequency_penalty": sampling.frequency_penalty,
            "response_format": _response_format(sampling),
            "thinking": _thinking(sampling.reasoning_effort),
        }
        return {
            "model": request.model,
            "messages": messages,
            "request_options": _NO_RETRIES,
            **{name: value for name, value in optional.items() if value is not None},
        }

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            response = await self._client.chat(**self._arguments(request))
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        failure = _failure(response.finish_reason, None, self.provider)
        if failure is not None:
            raise failure
        content = response.message.content or [] if response.message else []
        text = "".join(getattr(item, "text", "") or "" for item in content)
        return _FINISH(response.finish_reason).completion(text, _usage(response.usage))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        end: StreamEnd | None = None
        try:
            async for event in self._client.chat_stream(**self._arguments(request)):
                if event.type == "content-delta":
                    text = event.delta.message.content.text  # type: ignore[union-attr]
                    if text:
                        yield TextDelta(text)
                elif event.type == "message-end":
                    end = _stream_end(event.delta, self.provider)
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        if end is None:
            raise stream_cut(self.provider)
        yield end
