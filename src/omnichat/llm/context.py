"""The conversation sent with every request: clean turns only, trimmed oldest-first to fit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omnichat.errors import InvalidInput
from omnichat.llm.types import ChatTurn

# Per-message framing overhead most chat formats add (role markers, separators).
_TURN_OVERHEAD_TOKENS = 4
KEPT_STATUSES = frozenset({"complete", "stopped"})


def estimate_tokens(text: str) -> int:
    """Conservative without a network-fetched tokenizer: one token per 3 UTF-8 bytes counts
    English (~4 characters a token) high and CJK (3 bytes a character) about right."""
    return -(-len(text.encode("utf-8")) // 3) + _TURN_OVERHEAD_TOKENS


@dataclass(frozen=True)
class StoredTurn:
    """A stored message as context building sees it."""

    role: str
    content: str
    status: str


def clean_history(messages: Sequence[StoredTurn]) -> list[ChatTurn]:
    """Complete user/assistant exchanges only. A user turn whose reply failed, is still being
    written, came back empty or never came is dropped with its reply, so the model never sees a
    broken turn and roles always alternate. Stored system messages are left to the caller."""
    turns: list[ChatTurn] = []
    index = 0
    while index < len(messages):
        message = messages[index]
        if message.role != "user":
            index += 1
            continue
        reply = messages[index + 1] if index + 1 < len(messages) else None
        if (
            reply is not None
            and reply.role == "assistant"
            and reply.status in KEPT_STATUSES
            and reply.content.strip()
            and message.content.strip()
        ):
            turns.append(ChatTurn("user", message.content))
            turns.append(ChatTurn("assistant", reply.content))
            index += 2
        else:
            index += 1 if reply is None or reply.role == "user" else 2
    return turns


def fit_to_budget(
    history: list[ChatTurn], prompt: str, *, system: str | None, budget_tokens: int
) -> tuple[ChatTurn, ...]:
    """History plus the new prompt, dropping the oldest exchanges until the estimate fits."""
    fixed = estimate_tokens(prompt) + (estimate_tokens(system) if system else 0)
    if fixed > budget_tokens:
        raise InvalidInput(
            f"The message is too long for this model's context ({budget_tokens} tokens)"
        )
    costs = [estimate_tokens(turn.content) for turn in history]
    total = fixed + sum(costs)
    start = 0
    # Drop whole exchanges (user + assistant) so the kept history still starts with a user turn.
    while total > budget_tokens and start < len(history):
        total -= sum(costs[start : start + 2])
        start += 2
    return (*history[start:], ChatTurn("user", prompt))
