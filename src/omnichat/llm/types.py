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


@dataclass(frozen=True, slots=True)
class StreamEnd:
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)


StreamEvent = TextDelta | StreamEnd


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
