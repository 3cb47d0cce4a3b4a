"""A ``/v1/chat/completions`` request as OmniChat's ``Prompt``: the messages exactly as sent,
every field in ``Sampling`` or ``Tools`` for the provider adapters to carry natively, and a 400
naming the field (OpenAI's ``param``) for what no provider is sent yet."""

from __future__ import annotations

from typing import Any

from omnichat.errors import BadRequest
from omnichat.generation.service import Prompt
from omnichat.llm.base import tool_call_arguments
from omnichat.llm.types import ChatTurn, ImagePart, Sampling, ToolCall, Tools, ToolSpec
from omnichat.openai_api.images import image_part
from omnichat.openai_api.schemas import (
    ChatCompletionRequest,
    NamedToolChoice,
    OtherPart,
    TextPart,
)

# Fields OpenAI has that no provider is sent yet: refused by name, never dropped. A value that
# asks for nothing (``functions: []``, no audio) is accepted.
NOT_CARRIED = "is not carried to providers by this server yet"


def _refuse_uncarried(body: ChatCompletionRequest, max_choices: int) -> None:
    if (body.n or 1) > max_choices:
        raise BadRequest(
            f"'n' may be at most {max_choices} on this server (OMNICHAT_MAX_CHOICES)", param="n"
        )
    if body.top_logprobs is not None and not body.logprobs:
        raise BadRequest("'top_logprobs' needs 'logprobs: true'", param="top_logprobs")
    refusals: dict[str, tuple[bool, str]] = {
        "functions": (
            bool(body.functions),
            "is OpenAI's deprecated form of 'tools'; send 'tools'",
        ),
        "function_call": (
            body.function_call not in (None, "none"),
            "is OpenAI's deprecated form of 'tool_choice'; send 'tools'",
        ),
        "audio": (body.audio is not None, NOT_CARRIED),
        "modalities": (body.modalities not in (None, ["text"]), NOT_CARRIED),
        "prediction": (body.prediction is not None, NOT_CARRIED),
        "web_search_options": (body.web_search_options is not None, NOT_CARRIED),
    }
    for param, (refused, why) in refusals.items():
        if refused:
            raise BadRequest(f"'{param}' {why}", param=param, code="unsupported_parameter")
    if body.stream_options is not None and not body.stream:
        raise BadRequest(
            "'stream_options' is only allowed with 'stream: true'", param="stream_options"
        )
    if body.max_tokens is not None and body.max_completion_tokens is not None:
        raise BadRequest(
            "Send one of 'max_tokens' and 'max_completion_tokens'", param="max_completion_tokens"
        )


def _turns(body: ChatCompletionRequest) -> tuple[ChatTurn, ...]:
    """The messages as sent, each as one turn; what a turn cannot carry yet is refused naming
    its place (``messages[2].content[1]``). A tool result names the function whose call it
    answers, from the assistant turn that made the call."""
    turns: list[ChatTurn] = []
    called: dict[str, str] = {}  # tool call id -> function name
    for index, message in enumerate(body.messages):
        where = f"messages[{index}]"
        role = message.role
        if role == "function":
            raise BadRequest(
                "'function' messages are OpenAI's deprecated form of 'tool' messages",
                param=f"{where}.role",
            )
        for name in ("function_call", "audio", "name", "annotations"):
            if getattr(message, name):
                raise BadRequest(f"'{name}' on a message {NOT_CARRIED}", param=f"{where}.{name}")
        text, parts = _content(message.content, where)
        if message.refusal:
            if text:
                raise BadRequest(
                    "An assistant message has 'content' or a 'refusal', not both",
                    param=f"{where}.refusal",
                )
            text = message.refusal  # what the model said, as every provider can carry it
        if role == "tool":
            call_id = message.tool_call_id
            if not call_id or call_id not in called:
                raise BadRequest(
                    "A 'tool' message answers a tool call of an earlier assistant message: its "
                    "'tool_call_id' must be one of theirs",
                    param=f"{where}.tool_call_id",
                )
            turns.append(ChatTurn(role, text, tool_call_id=call_id, tool_name=called[call_id]))
            continue
        calls = tuple(
            ToolCall(call.id, call.function.name, call.function.arguments)
            for call in message.tool_calls or ()
        )
        for number, call in enumerate(calls):
            tool_call_arguments(call, None, f"{where}.tool_calls[{number}].function.arguments")
        if len({call.id for call in calls}) != len(calls):
            raise BadRequest("Each tool call needs an id of its own", param=f"{where}.tool_calls")
        if calls and role != "assistant":
            raise BadRequest("Only assistant messages make tool calls", param=f"{where}.tool_calls")
        called.update((call.id, call.name) for call in calls)
        if parts and role != "user":
            raise BadRequest("Only user messages hold images", param=f"{where}.content")
        turns.append(ChatTurn(role, text, tool_calls=calls, parts=parts))
    return tuple(turns)


def _content(
    content: str | list[TextPart | OtherPart] | None, where: str
) -> tuple[str, tuple[str | ImagePart, ...]]:
    """A message's text and, when it holds images, its parts in order (``ChatTurn.parts``)."""
    if not isinstance(content, list):
        return content or "", ()
    parts: list[str | ImagePart] = []
    for number, part in enumerate(content):
        if isinstance(part, TextPart):
            parts.append(part.text)
        elif part.type == "image_url":
            parts.append(image_part(part, f"{where}.content[{number}]"))
        else:
            raise BadRequest(
                f"'{part.type}' content parts {NOT_CARRIED}", param=f"{where}.content[{number}]"
            )
    text = "".join(piece for piece in parts if isinstance(piece, str))
    return text, tuple(parts) if any(isinstance(p, ImagePart) for p in parts) else ()


def _tools(body: ChatCompletionRequest) -> Tools:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` as ``Tools``."""
    specs = tuple(
        ToolSpec(
            name=tool.function.name,
            description=tool.function.description,
            parameters=tool.function.parameters,
            strict=tool.function.strict,
        )
        for tool in body.tools or ()
    )
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise BadRequest("Each tool needs a name of its own", param="tools")
    choice = body.tool_choice
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise BadRequest(
                f"tool_choice names '{choice.function.name}', which is not in 'tools'",
                param="tool_choice",
            )
        return Tools(specs, "function", choice.function.name, body.parallel_tool_calls)
    if choice == "required" and not specs:
        raise BadRequest("tool_choice 'required' needs 'tools'", param="tool_choice")
    return Tools(specs, choice or "auto", None, body.parallel_tool_calls)


def _sampling(body: ChatCompletionRequest) -> Sampling:
    response_format = None
    if body.response_format is not None and body.response_format.type != "text":
        response_format = body.response_format.model_dump(exclude_none=True, by_alias=True)
        spec = body.response_format.json_schema
        if body.response_format.type == "json_schema" and (
            spec is None or spec.json_schema is None
        ):
            raise BadRequest(
                "Type 'json_schema' needs 'json_schema.schema', the JSON Schema of the reply",
                param="response_format.json_schema.schema",
            )
        if body.response_format.type == "json_object" and spec is not None:
            raise BadRequest(
                "'json_schema' goes with type 'json_schema', not 'json_object'",
                param="response_format.json_schema",
            )
    end_user = tuple(
        (name, value)
        for name, value in (("user", body.user), ("safety_identifier", body.safety_identifier))
        if value
    )
    # ``logprobs: false`` asks for nothing: no provider is refused for it.
    openai_only: dict[str, Any] = {"logprobs": True} if body.logprobs else {}
    openai_only |= {
        name: getattr(body, name)
        for name in (
            "logit_bias",
            "metadata",
            "store",
            "service_tier",
            "prompt_cache_key",
            "prompt_cache_retention",
            "verbosity",
            "top_logprobs",
        )
        if getattr(body, name) is not None
    }
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return Sampling(
        temperature=body.temperature,
        top_p=body.top_p,
        stop=stop,
        seed=body.seed,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        response_format=response_format,
        reasoning_effort=body.reasoning_effort,
        end_user=end_user,
        openai_only=openai_only,
    )


def prompt_of(body: ChatCompletionRequest, operator_prompt: bool, max_choices: int) -> Prompt:
    """The request as OmniChat's ``Prompt``: the messages exactly as sent (``conversation``),
    the operator's system prompt only when OMNICHAT_V1_SYSTEM_PROMPT is on. ``n`` above
    ``max_choices`` (OMNICHAT_MAX_CHOICES) is a 400."""
    _refuse_uncarried(body, max_choices)
    turns = _turns(body)
    question = next((turn.content for turn in reversed(turns) if turn.role == "user"), None)
    if body.rag and question is None:
        raise BadRequest("'rag' needs a user message to answer", param="messages")
    return Prompt(
        text=question or "",
        conversation=turns,
        operator_prompt=operator_prompt,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        max_tokens_param=(
            "max_completion_tokens"
            if body.max_completion_tokens is not None
            else "max_tokens"
            if body.max_tokens is not None
            else None
        ),
        sampling=_sampling(body),
        tools=_tools(body),
    )
