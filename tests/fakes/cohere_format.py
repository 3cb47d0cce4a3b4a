"""Cohere v2 wire format (POST /v2/chat, POST /v2/embed, GET /v1/models).

Streams are SSE with both the `event:` line and a `type` field in the data, as the v2 API
sends them: message-start, content-start, content-delta, content-end, message-end; a reply that
calls tools streams tool-plan-delta, then tool-call-start, tool-call-delta, tool-call-end per
call, instead of the content events (https://docs.cohere.com/docs/tool-use-streaming).
"""

from __future__ import annotations

import itertools
import uuid
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
    split_tokens,
    sse_event,
    text_of,
    wire_finish,
)
from tests.fakes.openai_format import fake_embedding

_ids = itertools.count(1)

_FINISH = {STOP: "COMPLETE", LENGTH: "MAX_TOKENS"}


def _id() -> str:
    return str(uuid.UUID(int=next(_ids)))


def _usage(usage: Usage) -> dict[str, Any]:
    counts = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    return {"billed_units": counts, "tokens": dict(counts)}


def _message_start() -> bytes:
    start = {
        "id": _id(),
        "type": "message-start",
        "delta": {
            "message": {
                "role": "assistant",
                "content": [],
                "tool_plan": "",
                "tool_calls": [],
                "citations": [],
            }
        },
    }
    return sse_event("message-start", dumps(start))


def _event(kind: str, **fields: Any) -> bytes:
    return sse_event(kind, dumps({"type": kind, **fields}))


def _message_end(finish: Finish, usage: Usage) -> bytes:
    delta = {"finish_reason": wire_finish(finish, _FINISH), "usage": _usage(usage)}
    return _event("message-end", delta=delta)


class CohereStream(SimpleTail):
    def __init__(self, req: GenRequest) -> None:
        self._req = req

    def head(self) -> bytes:
        return _message_start() + sse_event(
            "content-start",
            b'{"type":"content-start","index":0,'
            b'"delta":{"message":{"content":{"type":"text","text":""}}}}',
        )

    def token(self, text: str) -> bytes:
        return (
            b'event: content-delta\ndata: {"type":"content-delta","index":0,'
            b'"delta":{"message":{"content":{"text":' + json_str(text) + b"}}}}\n\n"
        )

    def tail(self, finish: Finish, usage: Usage) -> bytes:
        return sse_event("content-end", b'{"type":"content-end","index":0}') + _message_end(
            finish, usage
        )


class CohereFormat:
    name = "cohere"
    stream_content_type = b"text/event-stream"

    def parse(self, path: str, body: dict[str, Any]) -> GenRequest:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        max_tokens = body.get("max_tokens")
        return GenRequest(
            model=str(body.get("model", "")),
            stream=bool(body.get("stream")),
            last_user_text=text_of(last_user.get("content")) if last_user else "",
            input_tokens=count_words(" ".join(text_of(m.get("content")) for m in messages)),
            max_tokens=int(max_tokens) if max_tokens else None,
        )

    def response(self, req: GenRequest, text: str, finish: Finish, usage: Usage) -> bytes:
        return dumps(
            {
                "id": _id(),
                "finish_reason": wire_finish(finish, _FINISH),
                "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
                "usage": _usage(usage),
            }
        )

    def stream(self, req: GenRequest) -> CohereStream:
        return CohereStream(req)

    def tool_calls(self, req: GenRequest, calls: list[tuple[str, str]], text: str | None) -> bytes:
        """``finish_reason: "TOOL_CALL"``, the calls in ``message.tool_calls`` after a
        ``tool_plan`` (``text``, or a stock plan: Cohere always writes one). Streamed: the plan in
        tool-plan-delta events, then per call tool-call-start (its id, type, name and empty
        arguments), its arguments in two tool-call-delta pieces, tool-call-end."""
        ids = [f"call_fake{next(_ids)}" for _ in calls]
        plan = text or "I will call the tools."
        usage = Usage(req.input_tokens, count_words(plan) + len(calls))
        if not req.stream:
            made = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                for i, (n, a) in zip(ids, calls, strict=True)
            ]
            message = {"role": "assistant", "tool_plan": plan, "tool_calls": made}
            return dumps(
                {
                    "id": _id(),
                    "finish_reason": "TOOL_CALL",
                    "message": message,
                    "usage": _usage(usage),
                }
            )
        out = _message_start()
        for piece in split_tokens(plan):
            out += _event("tool-plan-delta", delta={"message": {"tool_plan": piece}})
        for index, (call_id, (name, arguments)) in enumerate(zip(ids, calls, strict=True)):
            first = {"id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
            out += _event("tool-call-start", index=index, delta={"message": {"tool_calls": first}})
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                delta = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
                out += _event("tool-call-delta", index=index, delta=delta)
            out += _event("tool-call-end", index=index)
        return out + _message_end("TOOL_CALL", usage)

    def error(self, status: int, message: str, retry_after: float | None = None) -> bytes:
        return dumps({"id": _id(), "message": message})

    def embeddings(self, body: dict[str, Any], default_dim: int) -> bytes:
        """`embeddings_by_type`: one list per requested type; only "float" is made here."""
        texts = [str(t) for t in body.get("texts") or []]
        dim = int(body.get("output_dimension") or default_dim)
        types = body.get("embedding_types") or ["float"]
        vectors = [fake_embedding(text, dim) for text in texts]
        words = sum(count_words(t) for t in texts)
        return dumps(
            {
                "id": _id(),
                "response_type": "embeddings_by_type",
                "embeddings": {t: vectors for t in types if t == "float"},
                "texts": texts,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": words}},
            }
        )

    def models(self) -> bytes:
        data = [
            {
                "name": m,
                "endpoints": ["chat"],
                "finetuned": False,
                "context_length": 256000,
                "features": ["tools"],
            }
            for m in FAKE_MODELS["cohere"]
        ]
        return dumps({"models": data})
