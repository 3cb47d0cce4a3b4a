"""Gemini API wire format (google-genai, API-key mode).

POST /{v1,v1beta}/models/{model}:generateContent, POST .../{model}:streamGenerateContent?alt=sse
(SSE `data: {GenerateContentResponse}` frames, CRLF-terminated like the real service),
POST .../{model}:embedContent and :batchEmbedContents (what google-genai's `embed_content` calls,
whatever the number of texts) and GET /{v1,v1beta}/models.

A candidate's `finishReason` is the only end marker of a stream. A block (`finishReason`
SAFETY, RECITATION, ...: any raw value) with no text comes as a candidate without `content`,
and a blocked prompt as `promptFeedback.blockReason` with no candidates at all (google-genai
`GenerateContentResponse.prompt_feedback`: "sent only in the first stream chunk and only if no
candidates were generated due to content violations").

Function calls (`ToolCalls`) come as `functionCall` parts `{"id", "name", "args"}` (args an
object) after the text, if any, with `finishReason` STOP, as Gemini ends them; the first call
carries a `thoughtSignature`, as Gemini 3 sends it. Streamed: a text chunk, then one chunk
with every call (each whole), then a last chunk with an empty text part, the finish and usage.
"""

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
    Usage,
    count_words,
    dumps,
    json_str,
    text_of,
    wire_finish,
)
from tests.fakes.openai_format import fake_embedding

_ids = itertools.count(1)

_FINISH = {STOP: "STOP", LENGTH: "MAX_TOKENS"}

_STATUSES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_EOL = b"\r\n\r\n"
# An opaque signature, as Gemini 3 puts on a reply's first functionCall part (base64).
_THOUGHT_SIGNATURE = "Cp4BAdHtim9fakeSignatureForTests0000"


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.total_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": usage.input_tokens}],
    }


def _candidate(text: str, finish: Finish) -> dict[str, Any]:
    """A whole candidate; a raw finish value (a block) with no text has no content."""
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if not text and finish is not None and finish not in _FINISH:
        candidate = {}
    if finish is not None:
        candidate["finishReason"] = wire_finish(finish, _FINISH)
    candidate["index"] = 0
    return candidate


def _prompt_safety_ratings(block_reason: str) -> list[dict[str, Any]]:
    blocked = block_reason == "SAFETY"
    ratings: list[dict[str, Any]] = [
        {"category": category, "probability": "NEGLIGIBLE"}
        for category in (
            "HARM_CATEGORY_SEXUALLY_EXPLICIT",
            "HARM_CATEGORY_HATE_SPEECH",
            "HARM_CATEGORY_HARASSMENT",
        )
    ]
    dangerous: dict[str, Any] = {
        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
        "probability": "HIGH" if blocked else "NEGLIGIBLE",
    }
    if blocked:
        dangerous["blocked"] = True
    return [*ratings, dangerous]


def model_from_path(path: str) -> str:
    """`/v1beta/models/gemini-2.5-flash:streamGenerateContent` -> `gemini-2.5-flash`."""
    tail = path.split("/models/", 1)[-1]
    return tail.rsplit(":", 1)[0]


class GeminiStream:
    def __init__(self, req: GenRequest) -> None:
        self._req = req
        response_id = self._response_id = f"fake{next(_ids)}"
        self._suffix_common = (
            b',"modelVersion":' + json_str(req.model) + b',"responseId":"' + response_id.encode()
        )
        self._prefix = b'data: {"candidates":[{"content":{"parts":[{"text":'

    def head(self) -> bytes:
        return b""

    def _chunk(self, text: str, finish: str | None, usage: Usage | None) -> bytes:
        out = self._prefix + json_str(text) + b'}],"role":"model"}'
        if finish is not None:
            out += b',"finishReason":' + json_str(_FINISH.get(finish, finish))
        out += b',"index":0}]'
        if usage is not None:
            out += b',"usageMetadata":' + dumps(_usage(usage))
        return out + self._suffix_common + b'"}' + _EOL

    def token(self, text: str) -> bytes:
        return self._chunk(text, None, None)

    def last_token(self, text: str, finish: Finish, usage: Usage) -> bytes:
        return self._chunk(text, finish, usage)

    def tail(self, finish: Finish, usage: Usage) -> bytes:
        # Only used when there are no tokens at all: one empty chunk that carries the finish.
        if finish is None or finish in _FINISH:
            return self._chunk("", finish, usage)
        chunk = {
            "candidates": [_candidate("", finish)],
            "usageMetadata": _usage(usage),
            "modelVersion": self._req.model,
            "responseId": self._response_id,
        }
        return b"data: " + dumps(chunk) + _EOL


class GeminiFormat:
    name = "gemini"
    stream_content_type = b"text/event-stream"

    def parse(self, path: str, body: dict[str, Any]) -> GenRequest:
        contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
        last_user = next((c for c in reversed(contents) if c.get("role", "user") == "user"), None)
        system = body.get("systemInstruction") or body.get("system_instruction") or {}
        all_text = " ".join(
            [text_of(system.get("parts")) if isinstance(system, dict) else ""]
            + [text_of(c.get("parts")) for c in contents]
        )
        config = body.get("generationConfig") or {}
        max_tokens = config.get("maxOutputTokens")
        return GenRequest(
            model=model_from_path(path),
            stream=":streamGenerateContent" in path,
            last_user_text=text_of(last_user.get("parts")) if last_user else "",
            input_tokens=count_words(all_text),
            max_tokens=int(max_tokens) if max_tokens else None,
        )

    def response(self, req: GenRequest, text: str, finish: Finish, usage: Usage) -> bytes:
        return dumps(
            {
                "candidates": [_candidate(text, finish)],
                "usageMetadata": _usage(usage),
                "modelVersion": req.model,
                "responseId": f"fake{next(_ids)}",
            }
        )

    def stream(self, req: GenRequest) -> GeminiStream:
        return GeminiStream(req)

    def prompt_blocked(self, req: GenRequest, block_reason: str, *, stream: bool = False) -> bytes:
        """A blocked prompt: `promptFeedback` and usage, no candidates (streamed: one chunk)."""
        body = dumps(
            {
                "promptFeedback": {
                    "blockReason": block_reason,
                    "safetyRatings": _prompt_safety_ratings(block_reason),
                },
                "usageMetadata": {
                    "promptTokenCount": req.input_tokens,
                    "totalTokenCount": req.input_tokens,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": req.input_tokens}],
                },
                "modelVersion": req.model,
                "responseId": f"fake{next(_ids)}",
            }
        )
        return b"data: " + body + _EOL if stream else body

    def tool_calls(self, req: GenRequest, calls: list[tuple[str, str]], text: str | None) -> bytes:
        """``functionCall`` parts after the text (if any), ``finishReason`` STOP."""
        usage = Usage(req.input_tokens, count_words(text or "") + len(calls))
        call_parts: list[dict[str, Any]] = []
        for number, (name, arguments) in enumerate(calls):
            part: dict[str, Any] = {
                "functionCall": {
                    "id": f"fake{next(_ids)}",
                    "name": name,
                    "args": json.loads(arguments or "{}"),
                }
            }
            if number == 0:
                part["thoughtSignature"] = _THOUGHT_SIGNATURE
            call_parts.append(part)
        text_parts = [{"text": text}] if text else []
        response_id = f"fake{next(_ids)}"

        def body(parts: list[dict[str, Any]], last: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            if last:
                candidate["finishReason"] = "STOP"
            candidate["index"] = 0
            out: dict[str, Any] = {"candidates": [candidate]}
            if last or not req.stream:
                out["usageMetadata"] = _usage(usage)
            return {**out, "modelVersion": req.model, "responseId": response_id}

        if not req.stream:
            return dumps(body(text_parts + call_parts, last=True))
        chunks = [body(text_parts, last=False)] if text else []
        chunks += [body(call_parts, last=False), body([{"text": ""}], last=True)]
        return b"".join(b"data: " + dumps(chunk) + _EOL for chunk in chunks)

    def error(self, status: int, message: str, retry_after: float | None = None) -> bytes:
        code = _STATUSES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        error: dict[str, Any] = {"code": status, "message": message, "status": code}
        if retry_after is not None:
            # Gemini's own way to say when to retry: a google.rpc.RetryInfo detail.
            delay = f"{retry_after:g}s"
            error["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
            ]
        return dumps({"error": error})

    def embeddings(self, path: str, body: dict[str, Any], default_dim: int) -> bytes:
        def values(request: dict[str, Any]) -> list[float]:
            dim = int(request.get("outputDimensionality") or default_dim)
            return fake_embedding(text_of((request.get("content") or {}).get("parts")), dim)

        if path.endswith(":batchEmbedContents"):
            requests = [r for r in body.get("requests") or [] if isinstance(r, dict)]
            return dumps({"embeddings": [{"values": values(r)} for r in requests]})
        return dumps({"embedding": {"values": values(body)}})

    def models(self) -> bytes:
        data = [
            {
                "name": f"models/{m}",
                "version": "001",
                "displayName": m,
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for m in FAKE_MODELS["gemini"]
        ]
        return dumps({"models": data})
