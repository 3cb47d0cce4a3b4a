"""How a reply ended, in OpenAI's terms: each adapter maps its provider's native finish values
(``stop_reason``, ``finish_reason``, ``finishReason``) through one ``FinishMap``.

Unknown native values end a reply as ``stop``; refusals and blocks as ``content_filter`` with a
reason a user can read. A refusal is a normal end (a ``StreamEnd`` or ``Completion``), never an
exception: the retry policy must not send the same request again, nor try the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from omnichat.llm.types import (
    CONTENT_FILTER,
    Completion,
    FinishReason,
    StreamEnd,
    ToolCall,
    Usage,
)


class Ending(NamedTuple):
    """A reply's ``finish_reason``, and ``refusal`` (why, when it is ``content_filter``)."""

    finish_reason: FinishReason = "stop"
    refusal: str | None = None

    def stream_end(self, usage: Usage) -> StreamEnd:
        return StreamEnd(finish_reason=self.finish_reason, usage=usage, refusal=self.refusal)

    def completion(
        self, text: str, usage: Usage, tool_calls: tuple[ToolCall, ...] = ()
    ) -> Completion:
        return Completion(
            text=text,
            finish_reason=self.finish_reason,
            usage=usage,
            refusal=self.refusal,
            tool_calls=tool_calls,
        )


def native_value(native: object) -> str:
    """A native finish value as its wire string: SDK enums by ``value``, None as ``""``."""
    if native is None:
        return ""
    value = getattr(native, "value", native)
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class FinishMap:
    """One provider's finish values: ``length`` and ``tool_calls`` name the values that map to
    those, ``refusals`` the ones that mean the provider declined (value -> reason for users);
    any other value (its normal ends, and values it may add later) is ``stop``."""

    length: frozenset[str] = frozenset()
    tool_calls: frozenset[str] = frozenset()
    refusals: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, native: object) -> Ending:
        value = native_value(native)
        refusal = self.refusals.get(value)
        if refusal is not None:
            return Ending(CONTENT_FILTER, refusal)
        if value in self.length:
            return Ending("length")
        if value in self.tool_calls:
            return Ending("tool_calls")
        return Ending("stop")
