"""How Gemini receives tool use from /v1 in its native form (tests/test_v1_tools.py), as the
official google-genai SDK writes the REST body: ``tools[].functionDeclarations`` (each
declaration's schema under ``parameters_json_schema``, in the API's snake_case spelling, which
proto3 JSON takes as well as camelCase), ``toolConfig.functionCallingConfig``, ``functionCall``
parts in the model's content and ``functionResponse`` parts in the user content after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# tests/test_v1_tools.py's WEATHER_SCHEMA and RESULT (as an object), duplicated: that module
# imports this one.
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
RESULT = {"temperature_c": 21, "sky": "sunny"}
# Google's stand-in thought signature for calls Gemini did not sign (OpenAI's wire carries none).
FOREIGN_SIGNATURE = "skip_thought_signature_validator"


def _round_trip(sent: dict[str, Any], call_id: str) -> None:
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather now in a city",
                    "parameters_json_schema": WEATHER_SCHEMA,
                }
            ]
        }
    ]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert sent["contents"][-2:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {
                        "id": call_id,
                        "name": "get_weather",
                        "args": {"city": "Paris"},
                    },
                    "thoughtSignature": FOREIGN_SIGNATURE,
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"id": call_id, "name": "get_weather", "response": RESULT}}
            ],
        },
    ]


# Checks the request that carried the tool result back: (the body the provider got, call id).
round_trip: Callable[[dict[str, Any], str], None] | None = _round_trip
# tool_choice as the client sends it ("required", "none", "named": get_time) -> (the dotted
# path of the field in the provider's body, its expected value).
choices: dict[str, tuple[str, Any]] | None = {
    "required": ("toolConfig.functionCallingConfig", {"mode": "ANY"}),
    "none": ("toolConfig.functionCallingConfig", {"mode": "NONE"}),
    "named": (
        "toolConfig.functionCallingConfig",
        {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
    ),
}
