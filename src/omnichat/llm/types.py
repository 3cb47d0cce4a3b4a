"""Provider-neutral request, stream events and results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TurnRole = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: TurnRole
    content: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What every adapter receives: the provider's own model id, an optional system prompt and
    the conversation (alternating roles, ending with the user)."""

    model: str
    messages: tuple[ChatTurn, ...]
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None

    def sampling(self) -> dict[str, int | float]:
        """``max_tokens`` and ``temperature`` where set (the names OpenAI, Anthropic and Cohere
        share)."""
        given = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        return {key: value for key, value in given.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


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


StreamEvent = TextDelta | StreamEnd


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole reply; ``finish_reason`` and ``refusal`` as in ``StreamEnd``."""

    text: str
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    refusal: str | None = None
