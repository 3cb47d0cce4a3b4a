"""``/v1/models`` and ``/v1/chat/completions`` in OpenAI's wire format, so any OpenAI client or
UI can use OmniChat (authenticated with an access token or a personal API key). Stateless, as
OpenAI's API is: nothing is stored."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from omnichat.deps import CurrentUser, GenerationDep
from omnichat.errors import BadRequest, NotFound, error_responses
from omnichat.generation.hub import RequestReply
from omnichat.generation.service import GenerationService, Prompt
from omnichat.generation.sse import DONE, EventStreamResponse
from omnichat.llm.context import StoredTurn
from omnichat.llm.errors import ProviderError
from omnichat.llm.types import StreamEnd, StreamEvent, TextDelta, Usage
from omnichat.openai_api.schemas import ChatCompletionRequest

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])


@router.get("/models", responses=error_responses(401, openai=True))
async def list_models(user: CurrentUser, generation: GenerationDep) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": ref.id, "object": "model", "created": 0, "owned_by": ref.provider}
            for ref in generation.registry.available()
        ],
    }


def _prompt(body: ChatCompletionRequest) -> Prompt:
    system_notes: list[str] = []
    turns: list[StoredTurn] = []
    for message in body.messages:
        text = message.text()
        if text is None:
            raise BadRequest("Only text content parts are supported")
        if message.role in ("system", "developer"):
            system_notes.append(text)
        elif message.role in ("user", "assistant"):
            turns.append(StoredTurn(message.role, text, "complete"))
    if not turns or turns[-1].role != "user":
        raise BadRequest("The last message must come from the user")
    return Prompt(
        text=turns[-1].content,
        history=turns[:-1],
        system_notes=system_notes,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
    )


def _usage(usage: Usage) -> dict[str, int]:
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@router.post(
    "/chat/completions",
    response_model=None,
    # Streamed (``stream: true``): failures before the first token are these statuses, later
    # ones OpenAI's in-stream error event.
    responses={
        200: {"content": {"application/json": {}, "text/event-stream": {}}},
        **error_responses(400, 401, 413, 422, 429, 502, 503, 504, openai=True),
    },
)
async def chat_completions(
    body: ChatCompletionRequest, user: CurrentUser, generation: GenerationDep
) -> JSONResponse | StreamingResponse:
    ref = generation.registry.resolve(body.model)
    prompt = _prompt(body)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if not body.stream:
        generated = await generation.generate(user.id, ref, prompt, rag=body.rag)
        completion = generated.completion
        extra = {"sources": generated.sources} if generated.sources is not None else {}
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": generated.model.id,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": completion.text},
                        "finish_reason": completion.finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": _usage(completion.usage),
                **extra,
            }
        )
    # Streamed and not stored: the slot is held for as long as the response streams.
    in_request = await generation.begin_request_reply(user.id)
    try:
        if body.rag:
            prompt = await generation.ground(user.id, prompt, ref)
        stream = generation.stream(ref, prompt)
        events = stream.__aiter__()
        # The first event before any byte is sent: provider failures (after retries and
        # fallbacks) become a proper HTTP status instead of a broken stream.
        first = await anext(events)
    except asyncio.CancelledError:
        await generation.end_request_reply(in_request)
        if not in_request.take_back_cancel():
            raise
        raise NotFound(in_request.abandoned) from None
    except BaseException:
        await generation.end_request_reply(in_request)
        raise
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    chunks = _chunk_stream(
        generation,
        in_request,
        first,
        events,
        _ChunkMeta(completion_id, created, stream.model.id, include_usage, prompt.sources),
    )
    return EventStreamResponse(chunks)


@dataclass(frozen=True)
class _ChunkMeta:
    completion_id: str
    created: int
    model: str
    include_usage: bool
    sources: list[dict[str, Any]] | None


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


async def _chunk_stream(
    generation: GenerationService,
    in_request: RequestReply,
    first: StreamEvent,
    events: AsyncIterator[StreamEvent],
    meta: _ChunkMeta,
) -> AsyncIterator[bytes]:
    base = {
        "id": meta.completion_id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
    }

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return _sse({**base, "choices": choices, **extra})

    # Hot path: every content chunk is this template around the JSON-encoded token.
    template = chunk([{"index": 0, "delta": {"content": "\x00"}, "finish_reason": None}])
    content_prefix, content_suffix = template.split(b'"\\u0000"')
    try:
        yield chunk(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        end = StreamEnd()
        event: StreamEvent | None = first
        while event is not None:
            if isinstance(event, TextDelta):
                token = json.dumps(event.text, ensure_ascii=False).encode()
                yield content_prefix + token + content_suffix
            else:
                end = event
            event = await anext(events, None)
        # OmniChat's extension: the sources of a grounded answer ride on the closing chunk.
        extra = {"sources": meta.sources} if meta.sources is not None else {}
        yield chunk([{"index": 0, "delta": {}, "finish_reason": end.finish_reason}], **extra)
        if meta.include_usage:
            yield chunk([], usage=_usage(end.usage))
        yield DONE
    except ProviderError as error:
        # After the first token the status is sent: OpenAI's in-stream error event instead.
        yield _sse(
            {"error": {"message": error.client_message, "type": "provider_error", "code": None}}
        )
    except asyncio.CancelledError:
        if not in_request.take_back_cancel():
            raise  # the client went away, or the server is stopping
        yield _sse(
            {"error": {"message": in_request.abandoned, "type": "not_found_error", "code": None}}
        )
    finally:
        await generation.end_request_reply(in_request)
