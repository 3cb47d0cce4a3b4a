"""Cohere v2 chat.

Endings (``finish_reason``, cohere SDK ``ChatFinishReason``; streamed on ``message-end``):
``MAX_TOKENS`` (and v1's ``ERROR_LIMIT``) -> length; ``TOOL_CALL`` -> tool_calls; v1's
``ERROR_TOXIC`` (v2 has no toxic value of its own, its type admits any string) -> content_filter
("toxic content"); ``COMPLETE``, ``STOP_SEQUENCE``, none and anything else -> stop. ``ERROR`` and
``TIMEOUT`` are the provider's own failures, raised as such (the message-end ``delta.error`` says
why). A stream ends with ``message-end``; one without it was cut.

Tools (Cohere v2 chat, https://docs.cohere.com/reference/chat and the cohere SDK's ``ToolV2``,
``AssistantChatMessageV2``, ``ToolChatMessageV2`` and ``ChatToolCall*Event`` types): functions go
as ``tools=[{"type": "function", "function": {"name", "description", "parameters"}}]``, strict
schemas as the request-level ``strict_tools``; ``tool_choice`` is ``REQUIRED`` or ``NONE`` (auto:
omitted; Cohere cannot name the function). The model's calls come back in
``message.tool_calls`` (``{id, type, function: {name, arguments}}``, arguments JSON text) with a
``tool_plan`` (its reasoning about them, not the answer: dropped); streamed, ``tool-call-start``
carries a call's id, name and first arguments, ``tool-call-delta`` more of its arguments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import cohere

from omnichat.errors import UnsupportedField
from omnichat.llm.base import ProviderConfig, refuse_openai_only, stream_cut, translate_error
from omnichat.llm.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from omnichat.llm.finish import FinishMap, native_value
from omnichat.llm.types import (
    INSTRUCTION_ROLES,
    ChatTurn,
    Completion,
    GenerationRequest,
    ImagePart,
    Sampling,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Tools,
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
_TOOL_CHOICES = {"required": "REQUIRED", "none": "NONE"}
# OpenAI's meaning of a function without ``parameters``; Cohere's ``ToolV2Function`` needs them.
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


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


def _message(turn: ChatTurn) -> dict[str, Any]:
    """One turn as a Cohere v2 message: instruction turns as ``system``; an assistant turn that
    calls tools as ``{"role": "assistant", "tool_calls": [...], "tool_plan"?}`` (its text, if
    any, being the plan); a tool result as ``{"role": "tool", "tool_call_id", "content"}``."""
    if turn.role in INSTRUCTION_ROLES:
        return {"role": "system", "content": turn.content}
    if turn.role == "assistant" and turn.tool_calls:
        message: dict[str, Any] = {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in turn.tool_calls
            ],
        }
        if turn.content:
            message["tool_plan"] = turn.content
        return message
    if turn.role == "tool":
        return {"role": "tool", "tool_call_id": turn.tool_call_id, "content": turn.content}
    if turn.parts:
        return {"role": turn.role, "content": [_content_part(part) for part in turn.parts]}
    return {"role": turn.role, "content": turn.content}


def _content_part(part: str | ImagePart) -> dict[str, Any]:
    """A text piece, or a ``data:`` image as an ``image_url`` part (Cohere fetches no URL)."""
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if part.data is None:
        raise UnsupportedField("image_url", PROVIDER_NAME, "it takes images as data: URLs")
    image: dict[str, Any] = {"url": part.url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _tool_params(tools: Tools) -> dict[str, Any]:
    """``tools``, ``strict_tools`` and ``tool_choice``, or nothing when no function is offered.
    Raises ``UnsupportedField`` for what Cohere has no form of: strict schemas for some functions
    only, a named ``tool_choice``, ``parallel_tool_calls: false``."""
    if not tools.specs:
        return {}
    functions = []
    for spec in tools.specs:
        function: dict[str, Any] = {"name": spec.name}
        if spec.description is not None:
            function["description"] = spec.description
        function["parameters"] = dict(spec.parameters or _NO_PARAMETERS)
        functions.append({"type": "function", "function": function})
    params: dict[str, Any] = {"tools": functions}
    strict = {spec.strict is True for spec in tools.specs}
    if strict == {True}:
        params["strict_tools"] = True
    elif True in strict:
        why = "its strict_tools applies to every function, not some"
        raise UnsupportedField("tools", PROVIDER_NAME, why)
    if tools.choice == "function":
        why = "it can require a tool call, not name one"
        raise UnsupportedField("tool_choice", PROVIDER_NAME, why)
    if tools.choice in _TOOL_CHOICES:
        params["tool_choice"] = _TOOL_CHOICES[tools.choice]
    if tools.parallel is False:
        why = "it may always make several calls at once"
        raise UnsupportedField("parallel_tool_calls", PROVIDER_NAME, why)
    return params


def _tool_calls(message: Any) -> tuple[ToolCall, ...]:
    """``message.tool_calls`` (``ToolCallV2``: id, type, function {name, arguments})."""
    calls = []
    for call in getattr(message, "tool_calls", None) or ():
        function = call.function
        name = (function.name if function else None) or ""
        calls.append(ToolCall(call.id, name, (function.arguments if function else None) or ""))
    return tuple(calls)


class _ToolCallIndexes:
    """Cohere's stream ``index`` of each tool call, as OpenAI's ordinal from 0."""

    def __init__(self) -> None:
        self._ordinals: dict[int | None, int] = {}

    def __call__(self, index: int | None) -> int:
        return self._ordinals.setdefault(index, len(self._ordinals))


def _tool_call_start(event: Any, ordinal: int) -> ToolCallDelta:
    """``tool-call-start``: ``delta.message.tool_calls`` is one ``ToolCallV2``."""
    message = event.delta.message if event.delta else None
    call = message.tool_calls if message else None
    function = call.function if call else None
    return ToolCallDelta(
        index=ordinal,
        arguments=(function.arguments if function else None) or "",
        id=call.id if call else None,
        name=function.name if function else None,
    )


def _tool_call_piece(event: Any) -> str:
    """``tool-call-delta``: ``delta.message.tool_calls.function.arguments``, a piece of JSON."""
    message = event.delta.message if event.delta else None
    call = message.tool_calls if message else None
    function = call.function if call else None
    return (function.arguments if function else None) or ""


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
        refuse_openai_only(sampling, PROVIDER_NAME)
        messages: list[Any] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend(_message(turn) for turn in request.messages)
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
            **_tool_params(request.tools),
        }

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            response = await self._client.chat(**self._arguments(request))
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        failure = _failure(response.finish_reason, None, self.provider)
        if failure is not None:
            raise failure
        message = response.message
        content = (message.content or []) if message else []
        text = "".join(getattr(item, "text", "") or "" for item in content)
        ending = _FINISH(response.finish_reason)
        return ending.completion(text, _usage(response.usage), _tool_calls(message))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        end: StreamEnd | None = None
        ordinal = _ToolCallIndexes()
        try:
            async for event in self._client.chat_stream(**self._arguments(request)):
                if event.type == "content-delta":
                    text = event.delta.message.content.text  # type: ignore[union-attr]
                    if text:
                        yield TextDelta(text)
                elif event.type == "tool-call-start":
                    yield _tool_call_start(event, ordinal(event.index))
                elif event.type == "tool-call-delta":
                    piece = _tool_call_piece(event)
                    if piece:
                        yield ToolCallDelta(ordinal(event.index), arguments=piece)
                elif event.type == "message-end":
                    end = _stream_end(event.delta, self.provider)
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        if end is None:
            raise stream_cut(self.provider)
        yield end
