"""Provider-neutral request, stream events and results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# "system", "developer" and "tool" turns come only from /v1 clients, in the place they put
# them; an adapter whose provider takes instructions elsewhere moves them there.
TurnRole = Literal["system", "developer", "user", "assistant", "tool"]
INSTRUCTION_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for: OpenAI's ``tool_calls[]`` entry. ``arguments`` is
    JSON text, as OpenAI carries it (providers that send an object get it serialized)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image in a message, as OpenAI's ``image_url`` part carries it: ``url`` a ``data:``
    URL (``media_type`` and ``data`` decoded from it) or an ``http(s)`` URL the provider
    fetches; ``detail`` OpenAI's ``auto``/``low``/``high``."""

    url: str
    media_type: str | None = None
    data: bytes | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One message. An assistant turn may carry ``tool_calls`` (its ``content`` then possibly
    empty); a ``tool`` turn is the result of the call ``tool_call_id`` names, ``tool_name``
    being that call's function (found in the conversation: Gemini wants it). ``parts`` is set
    when the message holds images: its text pieces and ``ImagePart``s in order."""

    role: TurnRole
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    # A message with images: its text and images in order (``content`` is its text alone).
    parts: tuple[str | ImagePart, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call (OpenAI's ``tools[].function``): ``parameters`` is its
    arguments' JSON Schema."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class Tools:
    """The functions offered and how the model must use them. ``choice``: OpenAI's
    ``tool_choice`` (``auto``, ``none``, ``required``) or, for one named function, its name in
    ``function``. ``parallel``: OpenAI's ``parallel_tool_calls`` (None: the provider's
    default)."""

    specs: tuple[ToolSpec, ...] = ()
    choice: Literal["auto", "none", "required", "function"] = "auto"
    function: str | None = None
    parallel: bool | None = None


@dataclass(frozen=True, slots=True)
class Sampling:
    """The OpenAI request fields a client set beyond the conversation, by OpenAI's names (None
    or empty: not set, the provider's default). An adapter sends each in its provider's native
    form or raises ``UnsupportedField`` naming it (``llm.errors``): none is ever dropped.

    ``response_format``: OpenAI's ``{"type": "json_object"}`` or ``{"type": "json_schema",
    "json_schema": {"name", "schema", "strict"}}``. ``reasoning_effort``: OpenAI's ``none``,
    ``minimal``, ``low``, ``medium``, ``high``, ``xhigh``. ``end_user``: the ``user`` and
    ``safety_identifier`` the client set, ``(field, value)`` each: its end user's id for the
    provider's abuse monitoring.
    ``openai_only``: fields only OpenAI's API has (``logit_bias``, ``metadata``, ``store``,
    ``service_tier``, ``prompt_cache_key``, ``verbosity``, ``logprobs``, ``top_logprobs``),
    forwarded as given to OpenAI-format
    servers and refused by the others."""

    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: Mapping[str, Any] | None = None
    reasoning_effort: str | None = None
    end_user: tuple[tuple[str, str], ...] = ()
    openai_only: Mapping[str, Any] = field(default_factory=dict)

    def json_schema(self) -> Mapping[str, Any] | None:
        """``response_format``'s JSON schema when it asks for one."""
        if self.response_format and self.response_format.get("type") == "json_schema":
            spec = self.response_format.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            return schema if isinstance(schema, Mapping) else {}
        return None

    def wants_json_object(self) -> bool:
        return bool(self.response_format and self.response_format.get("type") == "json_object")


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What every adapter receives: the provider's own model id, an optional system prompt and
    the conversation. From the seed endpoints the turns alternate and end with the user; from
    ``/v1`` they are the client's, as sent (any order, instruction turns in place).
    ``max_tokens_param``: the name the client used (OpenAI's reasoning models take only
    ``max_completion_tokens``); None when it named none (``max_tokens`` is then the
    server's ceiling)."""

    model: str
    messages: tuple[ChatTurn, ...]
    system: str | None = None
    max_tokens: int | None = None
    sampling: Sampling = field(default_factory=Sampling)
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = None
    tools: Tools = field(default_factory=Tools)

    @property
    def temperature(self) -> float | None:
        return self.sampling.temperature

    def instructions(self) -> str | None:
        """``system`` and every instruction turn's text, in order, for providers that take
        instructions apart from the conversation."""
        parts = [
            self.system or "",
            *(t.content for t in self.messages if t.role in INSTRUCTION_ROLES),
        ]
        return "\n\n".join(part for part in parts if part) or None

    def dialogue(self) -> tuple[ChatTurn, ...]:
        """The conversation without its instruction turns."""
        return tuple(t for t in self.messages if t.role not in INSTRUCTION_ROLES)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply's text; ``logprobs``: OpenAI's ``choices[].logprobs`` object of
    the chunk that carried it (``{"content": [{"token", "logprob", "bytes",
    "top_logprobs"}], ...}``), when the client asked for ``logprobs``."""

    text: str
    logprobs: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of the ``index``-th tool call of a streamed reply, as OpenAI streams them: the
    first piece of a call has its ``id`` and ``name``, every piece a part of its ``arguments``
    (JSON text; the parts joined are the whole)."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


# OpenAI's finish reasons, the only ones adapters report: each maps its provider's own values.
FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]
CONTENT_FILTER: FinishReason = "content_filter"


def declined_message(refusal: str | None) -> str:
    """What a user is told of a refusal (``refusal``: the provider's reason, e.g. "safety")."""
    return f"The provider declined: {refusal or 'content policy'}"


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """How a stream ended. ``finish_reason`` is ``content_filter`` when the provider declined
    (refused, blocked the prompt or cut the reply for safety, recitation, ...); ``refusal`` then
    says why, in words a user can read."""

    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    refusal: str | None = None


StreamEvent = TextDelta | ToolCallDelta | StreamEnd


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole reply; ``finish_reason`` and ``refusal`` as in ``StreamEnd``."""

    text: str
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    refusal: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    # OpenAI's ``choices[].logprobs`` object, when the client asked for ``logprobs``.
    logprobs: Mapping[str, Any] | None = None
