"""Anthropic Messages wire format (POST /v1/messages, GET /v1/models)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.fakes._common import (
    FAKE_MODELS,
    LENGTH,
    STOP,
    Finish,
    GenRequest,
    SimpleTail,
    Usage,
    count_words,
    dumps,
    json_str,
    sse_event,
    text_of,
    wire_finish,
)

_ids = itertools.count(1)

_FINISH = {STOP: "end_turn", LENGTH: "max_tokens"}
# What comes with stop_reason "refusal" (Anthropic's example, "Handle streaming refusals";
# anthropic SDK `RefusalStopDetails`); no other stop_reason has details.
_REFUSAL_DETAILS = {
    "type": "refusal",
    "category": "cyber",
    "explanation": "This request was declined because it could enable cyber harm.",
}


def _stop(finish: Finish) -> dict[str, Any]:
    stop_reason = wire_finish(finish, _FINISH)
    stop: dict[str, Any] = {"stop_reason": stop_reason, "stop_sequence": None}
    if stop_reason == "refusal":
        stop["stop_details"] = _REFUSAL_DETAILS
    return stop


_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": usage.output_tokens,
        "service_tier": "standard",
    }


class AnthropicStream(SimpleTail):
    def __init__(self, req: GenRequest) -> None:
        self._req = req
        self._id = f"msg_fake{next(_ids):020d}"

    def message_start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._req.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(Usage(self._req.input_tokens, 1)),
        }
        return sse_event("message_start", dumps({"type": "message_start", "message": message}))

    def head(self) -> bytes:
        return (
            self.message_start()
            + sse_event(
                "content_block_start",
                b'{"type":"content_block_start","index":0,'
                b'"content_block":{"type":"text","text":""}}',
            )
            + sse_event("ping", b'{"type": "ping"}')
        )

    def token(self, text: str) -> bytes:
        return (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":' + json_str(text) + b"}}\n\n"
        )

    def tail(self, finish: Finish, usage: Usage) -> bytes:
        return _block_stop(0) + self.message_end(finish, usage)

    def message_end(self, finish: Finish, usage: Usage) -> bytes:
        """``message_delta`` (the stop reason, the output tokens), then ``message_stop``."""
        delta = {
            "type": "message_delta",
            "delta": _stop(finish),
            "usage": {"output_tokens": usage.output_tokens},
        }
        return sse_event("message_delta", dumps(delta)) + sse_event(
            "message_stop", b'{"type":"message_stop"}'
        )


def _block_stop(index: int) -> bytes:
    return sse_event("content_block_stop", dumps({"type": "content_block_stop", "index": index}))


def _tool_use_events(index: int, call_id: str, name: str, arguments: str) -> bytes:
    """One streamed ``tool_use`` block, as Anthropic streams it: its start (id, name, an empty
    ``input``), its input's JSON text in two ``input_json_delta`` pieces, its stop."""
    start = {
        "type": "content_block_start",
        "index": index,
        "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
    }
    out = sse_event("content_block_start", dumps(start))
    half = len(arguments) // 2
    for piece in (arguments[:half], arguments[half:]):
        delta = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "input_json_delta", "partial_json": piece},
        }
        out += sse_event("content_block_delta", dumps(delta))
    return out + _block_stop(index)


class AnthropicFormat:
    name = "anthropic"
    stream_content_type = b"text/event-stream; charset=utf-8"

    def parse(self, path: str, body: dict[str, Any]) -> GenRequest:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        all_text = " ".join(
            [text_of(body.get("system"))] + [text_of(m.get("content")) for m in messages]
        )
        max_tokens = body.get("max_tokens")
        return GenRequest(
            model=str(body.get("model", "")),
            stream=bool(body.get("stream")),
            last_user_text=text_of(last_user.get("content")) if last_user else "",
            input_tokens=count_words(all_text),
            max_tokens=int(max_tokens) if max_tokens else None,
        )

    def response(self, req: GenRequest, text: str, finish: Finish, usage: Usage) -> bytes:
        return dumps(
            {
                "id": f"msg_fake{next(_ids):020d}",
                "type": "message",
                "role": "assistant",
                "model": req.model,
                "content": [{"type": "text", "text": text}],
                **_stop(finish),
                "usage": _usage(usage),
            }
        )

    def stream(self, req: GenRequest) -> AnthropicStream:
        return AnthropicStream(req)

    def tool_calls(self, req: GenRequest, calls: list[tuple[str, str]], text: str | None) -> bytes:
        """``stop_reason: "tool_use"``, the calls as ``tool_use`` blocks after a ``text`` block
        if ``text``; streamed, each block's start, deltas and stop (``_tool_use_events``)."""
        ids = [f"toolu_fake{next(_ids):020d}" for _ in calls]
        usage = Usage(req.input_tokens, count_words(text or "") + len(calls))
        if not req.stream:
            content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
            content += [
                {"type": "tool_use", "id": i, "name": n, "input": json.loads(a)}
                for i, (n, a) in zip(ids, calls, strict=True)
            ]
            return dumps(
                {
                    "id": f"msg_fake{next(_ids):020d}",
                    "type": "message",
                    "role": "assistant",
                    "model": req.model,
                    "content": content,
                    **_stop("tool_use"),
                    "usage": _usage(usage),
                }
            )
        stream = AnthropicStream(req)
        if text:  # a text block at index 0, the calls after it
            out, first = stream.head() + stream.token(text) + _block_stop(0), 1
        else:
            out, first = stream.message_start() + sse_event("ping", b'{"type": "ping"}'), 0
        for index, (call_id, (name, arguments)) in enumerate(zip(ids, calls, strict=True), first):
            out += _tool_use_events(index, call_id, name, arguments)
        return out + stream.message_end("tool_use", usage)

    def error(self, status: int, message: str, retry_after: float | None = None) -> bytes:
        kind = _ERROR_TYPES.get(status, "api_error")
        return dumps(
            {
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": f"req_fake{next(_ids):020d}",
            }
        )

    def models(self) -> bytes:
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m.replace("-", " ").title(),
                "created_at": "2025-01-01T00:00:00Z",
            }
            for m in FAKE_MODELS["anthropic"]
        ]
        return dumps(
            {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )
