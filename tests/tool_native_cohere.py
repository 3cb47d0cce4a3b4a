"""How Cohere receives tool use from /v1 in its native form (tests/test_v1_tools.py): Cohere v2
chat's ``tools``, ``tool_choice`` and its assistant ``tool_calls`` and ``tool`` messages. A named
``tool_choice`` has no Cohere form: refused, tested in tests/test_v1_tools_cohere.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _round_trip(sent: dict[str, Any], call_id: str) -> None:
    # Imported here: tests/test_v1_tools.py imports this module before defining these.
    from tests.test_v1_tools import RESULT, WEATHER_SCHEMA

    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather now in a city",
                "parameters": WEATHER_SCHEMA,
            },
        }
    ]
    assert "tool_choice" not in sent  # auto: Cohere's default, left out
    assert "strict_tools" not in sent
    assert sent["messages"][-2:] == [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": RESULT},
    ]


# Checks the request that carried the tool result back: (the body the provider got, call id).
round_trip: Callable[[dict[str, Any], str], None] | None = _round_trip
# tool_choice as the client sends it ("required", "none", "named": get_time) -> (the dotted
# path of the field in the provider's body, its expected value).
choices: dict[str, tuple[str, Any]] | None = {
    "required": ("tool_choice", "REQUIRED"),
    "none": ("tool_choice", "NONE"),
}
