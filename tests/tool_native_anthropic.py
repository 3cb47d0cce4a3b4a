"""How Anthropic receives tool use from /v1 in its native form (tests/test_v1_tools.py): its
Messages API's ``tools`` (``input_schema``), ``tool_choice`` objects, ``tool_use`` blocks in the
assistant turn and ``tool_result`` blocks in the user turn after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# tests/test_v1_tools.py's tool and result, duplicated: it imports this module.
_WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
_RESULT = '{"temperature_c": 21, "sky": "sunny"}'


def _round_trip(sent: dict[str, Any], call_id: str) -> None:
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather now in a city",
            "input_schema": _WEATHER_SCHEMA,
        }
    ]
    assert sent["tool_choice"] == {"type": "auto"}
    assert sent["messages"][-2:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": call_id,
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call_id, "content": _RESULT}],
        },
    ]


# Checks the request that carried the tool result back: (the body the provider got, call id).
round_trip: Callable[[dict[str, Any], str], None] | None = _round_trip
# tool_choice as the client sends it ("required", "none", "named": get_time) -> (the dotted
# path of the field in the provider's body, its expected value).
choices: dict[str, tuple[str, Any]] | None = {
    "required": ("tool_choice", {"type": "any"}),
    "none": ("tool_choice", {"type": "none"}),
    "named": ("tool_choice", {"type": "tool", "name": "get_time"}),
}
