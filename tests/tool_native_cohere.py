"""How Cohere receives tool use from /v1 in its native form (tests/test_v1_tools.py): set
``round_trip`` and ``choices`` once the Cohere adapter carries tools."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Checks the request that carried the tool result back: (the body the provider got, call id).
round_trip: Callable[[dict[str, Any], str], None] | None = None
# tool_choice as the client sends it ("required", "none", "named": get_time) -> (the dotted
# path of the field in the provider's body, its expected value).
choices: dict[str, tuple[str, Any]] | None = None
