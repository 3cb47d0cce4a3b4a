"""Anthropic messages API (Claude).

Endings (``stop_reason``, anthropic SDK ``StopReason``; streamed on ``message_delta``):
``max_tokens``, ``model_context_window_exceeded`` -> length; ``tool_use`` -> tool_calls;
``refusal`` -> content_filter ("safety", or "safety (cyber)" with ``stop_details.category``);
``end_turn``, ``stop_sequence``, ``pause_turn``, none and anything else -> stop. A stream ends
with ``message_stop``; one without it was cut.

Tools (Anthropic's "Tool use" guide; anthropic SDK ``ToolParam``, ``ToolChoiceParam``,
``ToolUseBlock``, ``ToolResultBlockParam``, ``InputJSONDelta``): OpenAI's ``tools[].function``
-> ``tools[]`` ``{"name", "description", "input_schema", "strict"}``; ``tool_choice`` auto,
required, none, a named function -> ``{"type": "auto" | "any" | "none" | "tool", "name"}``,
``parallel_tool_calls: false`` -> ``disable_parallel_tool_use: true`` in it. An assistant
turn's ``tool_calls`` -> ``tool_use`` blocks (``input``: the arguments as an object); ``tool``
turns -> ``tool_result`` blocks, those of one assistant turn's calls in one user message. The
model's ``tool_use`` blocks come back as ``ToolCall``s (``input`` as JSON text); streamed, a
``content_block_start`` of a ``tool_use`` block gives a call's id and name, each
``input_json_delta`` a piece of its arguments.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
from anthropic import AsyncAnthropic

from omnichat.errors import UnsupportedField
from omnichat.llm.base import (
    ProviderConfig,
    refuse_openai_only,
    require_dialogue,
    stream_cut,
    tool_call_arguments,
    translate_error,
)
from omnichat.llm.finish import Ending, FinishMap
from omnichat.llm.types import (
    INSTRUCTION_ROLES,
    ChatTurn,
    Completion,
    GenerationRequest,
    ImagePart,
    Sampling,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Tools,
    Usage,
)

# Anthropic requires max_tokens; used when the caller gives none.
DEFAULT_MAX_TOKENS = 4096
PROVIDER_NAME = "Anthropic"
# OpenAI's reasoning_effort as Anthropic's output_config.effort ("none": thinking disabled).
_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh"}
_NO_SAMPLING = "its API (version 2026-10-21) takes no sampling parameters"
# OpenAI's tool_choice as Anthropic's tool_choice.type ("function": "tool", with its name).
_TOOL_CHOICE = {"auto": "auto", "required": "any", "none": "none", "function": "tool"}
# A function with no parameters schema takes no arguments (Anthropic requires input_schema).
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
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
    refuse_openai_only(sampling, PROVIDER_NAME)
    if sampling.wants_json_object():
        raise UnsupportedField(
            "response_format",
            PROVIDER_NAME,
            'it has structured output by schema ("json_schema"), not JSON mode ("json_object")',
        )
    if sampling.reasoning_effort not in (None, "none", *_EFFORT):
        raise UnsupportedField("reasoning_effort", PROVIDER_NAME)


def _tool_params(tools: Tools) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` (none when no function is offered)."""
    if not tools.specs:
        return {}
    declared = []
    for spec in tools.specs:
        tool: dict[str, Any] = {
            "name": spec.name,
            "input_schema": dict(spec.parameters or _NO_PARAMETERS),
        }
        if spec.description is not None:
            tool["description"] = spec.description
        if spec.strict is not None:
            tool["strict"] = spec.strict
        declared.append(tool)
    choice: dict[str, Any] = {"type": _TOOL_CHOICE[tools.choice]}
    if tools.choice == "function":
        choice["name"] = tools.function
    if tools.parallel is False and tools.choice != "none":
        choice["disable_parallel_tool_use"] = True
    return {"tools": declared, "tool_choice": choice}


def _block(part: str | ImagePart) -> dict[str, Any]:
    """A text piece or an image as a content block: a ``data:`` image as a ``base64`` source,
    an ``http(s)`` one as a ``url`` source (Anthropic fetches it)."""
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if part.detail not in (None, "auto"):
        raise UnsupportedField("detail", PROVIDER_NAME, "it sizes images itself")
    if part.data is None:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    data = base64.b64encode(part.data).decode("ascii")
    source = {"type": "base64", "media_type": part.media_type, "data": data}
    return {"type": "image", "source": source}


def _messages(turns: tuple[ChatTurn, ...]) -> list[dict[str, Any]]:
    """``messages`` from the turns of ``GenerationRequest.messages`` (instruction turns are
    skipped: they go to ``system``). Plain turns keep string content; an assistant turn with
    tool calls becomes ``text`` (if any) and ``tool_use`` blocks; a ``tool`` turn becomes a
    user message's ``tool_result`` block, consecutive results sharing one message (Anthropic
    wants every result of a turn's calls in the user message right after it). A malformed
    call's ``param`` is its place among the turns (a /v1 client's messages, as sent)."""
    messages: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None  # the tool_result blocks being gathered
    for index, turn in enumerate(turns):
        if turn.role in INSTRUCTION_ROLES:
            continue
        if turn.role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": turn.tool_call_id}
            if turn.content:
                block["content"] = turn.content
            if results is None:
                results = []
                messages.append({"role": "user", "content": results})
            results.append(block)
            continue
        results = None
        if turn.parts:
            messages.append({"role": turn.role, "content": [_block(p) for p in turn.parts]})
            continue
        if not turn.tool_calls:
            messages.append({"role": turn.role, "content": turn.content})
            continue
        blocks: list[dict[str, Any]] = []
        if turn.content:
            blocks.append({"type": "text", "text": turn.content})
        for number, call in enumerate(turn.tool_calls):
            where = f"messages[{index}].tool_calls[{number}].function.arguments"
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    "input": tool_call_arguments(call, PROVIDER_NAME, where),
                }
            )
        messages.append({"role": turn.role, "content": blocks})
    return messages


@dataclass(slots=True)
class _StreamedCall:
    """A ``tool_use`` block being streamed: its tool call's number, from 0, and whether any
    argument text came yet."""

    number: int
    has_arguments: bool = False


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
        ``system``; consecutive turns of one role are sent as they are (the API joins them),
        but for tool results (``_messages``). Raises ``UnsupportedField`` for what Anthropic
        has no form of, ``BadRequest`` for tool call arguments that are no JSON object."""
        sampling = request.sampling
        _refuse_unsupported(sampling)
        require_dialogue(request, PROVIDER_NAME)
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": _messages(request.messages),
            **_tool_params(request.tools),
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
        end_users = {value for _, value in sampling.end_user}
        if len(end_users) > 1:
            raise UnsupportedField(
                "safety_identifier", PROVIDER_NAME, "it has one end-user id (metadata.user_id)"
            )
        if end_users:
            params["metadata"] = {"user_id": end_users.pop()}
        return params

    async def generate(self, request: GenerationRequest) -> Completion:
        params = self._params(request)  # what it refuses is the client's, not the provider's
        try:
            message = await self._client.messages.create(**params)
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        text = "".join(block.text for block in message.content if block.type == "text")
        calls = tuple(
            ToolCall(block.id, block.name, json.dumps(block.input))
            for block in message.content
            if block.type == "tool_use"
        )
        usage = Usage(message.usage.input_tokens, message.usage.output_tokens)
        return _ending(message.stop_reason, message.stop_details).completion(text, usage, calls)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Text deltas and tool call pieces as they come. Tool calls are numbered from 0 in the
        order their ``tool_use`` blocks start, keyed by content block ``index``; a call whose
        blocks gave no argument text gets ``{}`` (OpenAI clients parse the arguments)."""
        input_tokens: int | None = None
        output_tokens: int | None = None
        ending = Ending()
        finished = False
        calls: dict[int, _StreamedCall] = {}  # content block index -> its call
        params = self._params(request)
        try:
            stream = await self._client.messages.create(**params, stream=True)
            async for event in stream:
                if event.type == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        yield TextDelta(delta.text)
                    elif delta.type == "input_json_delta" and delta.partial_json:
                        call = calls.get(event.index)
                        if call is not None:
                            call.has_arguments = True
                            yield ToolCallDelta(call.number, delta.partial_json)
                elif event.type == "content_block_start":
                    block = event.content_block
                    if block.type == "tool_use":
                        call = calls[event.index] = _StreamedCall(len(calls))
                        yield ToolCallDelta(call.number, "", block.id, block.name)
                elif event.type == "content_block_stop":
                    ended = calls.get(event.index)
                    if ended is not None and not ended.has_arguments:
                        ended.has_arguments = True
                        yield ToolCallDelta(ended.number, "{}")
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
