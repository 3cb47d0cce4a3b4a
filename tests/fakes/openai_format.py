"""OpenAI Chat Completions wire format (POST /v1/chat/completions, /v1/embeddings, /v1/models)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import random
import struct
import time
from typing import Any

from tests.fakes._common import (
    FAKE_MODELS,
    Finish,
    GenRequest,
    SimpleTail,
    Usage,
    count_words,
    dumps,
    json_str,
    sse_data,
    text_of,
)

_ids = itertools.count(1)

_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def _all_text(messages: list[dict[str, Any]]) -> str:
    return " ".join(text_of(m.get("content")) for m in messages if isinstance(m, dict))


class OpenAIStream(SimpleTail):
    def __init__(self, req: GenRequest) -> None:
        self._req = req
        common = (
            b'{"id":"chatcmpl-fake%d","object":"chat.completion.chunk","created":%d,"model":'
            % (next(_ids), int(time.time()))
        ) + json_str(req.model)
        self._common = common + b',"system_fingerprint":"fp_fake","service_tier":"default"'
        usage_null = b',"usage":null' if req.include_usage else b""
        self._token_prefix = self._common + b',"choices":[{"index":0,"delta":{"content":'
        self._token_suffix = b'},"logprobs":null,"finish_reason":null}]' + usage_null + b"}"
        self._usage_null = usage_null

    def head(self) -> bytes:
        return sse_data(
            self._common
            + b',"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
            + b'"logprobs":null,"finish_reason":null}]'
            + self._usage_null
            + b"}"
        )

    def token(self, text: str) -> bytes:
        if self._req.logprobs is not None:
            suffix = b'},"logprobs":' + dumps(logprobs_of([text], self._req.logprobs))
            suffix += b',"finish_reason":null}]' + self._usage_null + b"}"
            return b"data: " + self._token_prefix + json_str(text) + suffix + b"\n\n"
        return b"data: " + self._token_prefix + json_str(text) + self._token_suffix + b"\n\n"

    def delta(self, delta: dict[str, Any]) -> bytes:
        """A chunk with this ``delta`` (e.g. a piece of a tool call)."""
        return sse_data(
            self._common
            + b',"choices":[{"index":0,"delta":'
            + dumps(delta)
            + b',"logprobs":null,"finish_reason":null}]'
            + self._usage_null
            + b"}"
        )

    def tail(self, finish: Finish, usage: Usage) -> bytes:
        out = sse_data(
            self._common
            + b',"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":'
            + dumps(finish)
            + b"}]"
            + self._usage_null
            + b"}"
        )
        if self._req.include_usage:
            out += sse_data(self._common + b',"choices":[],"usage":' + dumps(_usage(usage)) + b"}")
        return out + b"data: [DONE]\n\n"


def logprobs_of(tokens: list[str], top: int) -> dict[str, Any]:
    """OpenAI's ``choices[].logprobs`` for these tokens: a made-up, deterministic log
    probability per token (from its length) and ``top`` alternatives."""

    def entry(token: str, rank: int) -> dict[str, Any]:
        return {
            "token": token,
            "logprob": -round(0.01 * len(token) + rank, 4),
            "bytes": list(token.encode()),
        }

    content = [
        {
            **entry(token, 0),
            "top_logprobs": [entry(token + "~" * rank, rank) for rank in range(top)],
        }
        for token in tokens
    ]
    return {"content": content, "refusal": None}


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class OpenAIFormat:
    name = "openai"
    stream_content_type = b"text/event-stream; charset=utf-8"

    def parse(self, path: str, body: dict[str, Any]) -> GenRequest:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        options = body.get("stream_options") or {}
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        return GenRequest(
            model=str(body.get("model", "")),
            stream=bool(body.get("stream")),
            last_user_text=text_of(last_user.get("content")) if last_user else "",
            input_tokens=count_words(_all_text(messages)),
            max_tokens=int(max_tokens) if max_tokens else None,
            include_usage=bool(options.get("include_usage")),
            logprobs=int(body.get("top_logprobs") or 0) if body.get("logprobs") else None,
        )

    def response(self, req: GenRequest, text: str, finish: Finish, usage: Usage) -> bytes:
        return dumps(
            {
                "id": f"chatcmpl-fake{next(_ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": req.model,
                "system_fingerprint": "fp_fake",
                "service_tier": "default",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": text,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": (
                            None
                            if req.logprobs is None
                            else logprobs_of(text.split(" "), req.logprobs)
                        ),
                        "finish_reason": finish,
                    }
                ],
                "usage": _usage(usage),
            }
        )

    def stream(self, req: GenRequest) -> OpenAIStream:
        return OpenAIStream(req)

    def tool_calls(self, req: GenRequest, calls: list[tuple[str, str]], text: str | None) -> bytes:
        """``finish_reason: "tool_calls"``; streamed, each call's id, type and name come first,
        then its arguments in two pieces (as OpenAI streams them)."""
        ids = [f"call_fake{next(_ids)}" for _ in calls]
        usage = Usage(req.input_tokens, count_words(text or "") + len(calls))
        if not req.stream:
            message = {
                "role": "assistant",
                "content": text,
                "refusal": None,
                "annotations": [],
                "tool_calls": [
                    {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                    for i, (n, a) in zip(ids, calls, strict=True)
                ],
            }
            return dumps(
                {
                    "id": f"chatcmpl-fake{next(_ids)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": req.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": "tool_calls",
                        }
                    ],
                    "usage": _usage(usage),
                }
            )
        stream = OpenAIStream(req)
        out = stream.head() + (stream.token(text) if text else b"")
        for index, (call_id, (name, arguments)) in enumerate(zip(ids, calls, strict=True)):
            first = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            out += stream.delta({"tool_calls": [first]})
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                out += stream.delta(
                    {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                )
        return out + stream.tail("tool_calls", usage)

    def error(self, status: int, message: str, retry_after: float | None = None) -> bytes:
        kind, code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "error", None))
        return dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})

    def models(self) -> bytes:
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"}
            for m in FAKE_MODELS["openai"]
        ]
        return dumps({"object": "list", "data": data})

    def embeddings(self, body: dict[str, Any], default_dim: int) -> bytes:
        raw = body.get("input", "")
        if isinstance(raw, str):
            inputs: list[str] = [raw]
        elif raw and all(isinstance(x, int) for x in raw):
            inputs = [" ".join(map(str, raw))]  # one pre-tokenised input
        else:
            inputs = [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
        dim = int(body.get("dimensions") or default_dim)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(inputs):
            vector = fake_embedding(text, dim)
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        words = sum(count_words(t) for t in inputs)
        return dumps(
            {
                "object": "list",
                "data": data,
                "model": str(body.get("model", "")),
                "usage": {"prompt_tokens": words, "total_tokens": words},
            }
        )


def fake_embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector seeded by a hash of `text` (same text, same vector)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    vector = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    # Round-trip through float32 so base64 and float responses carry the same numbers.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in vector]
