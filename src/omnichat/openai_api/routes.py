"""``/v1/chat/completions`` in OpenAI's wire format, so any OpenAI client or UI can use
OmniChat (authenticated with an access token or a personal API key). Stateless, as OpenAI's
API is: nothing is stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from omnichat.authenticate_first import AuthenticateFirstRoute
from omnichat.deps import CurrentUser, GenerationDep
from omnichat.errors import NotFound, error_responses, openai_error_type
from omnichat.generation.choices import all_or_none, close_streams, indexed, merged
from omnichat.generation.hub import RequestReply
from omnichat.generation.service import GenerationService, choice_prompts
from omnichat.generation.sse import DONE, EventStreamResponse, sse_data, unless_disconnected
from omnichat.llm.errors import ProviderError
from omnichat.llm.registry import UnknownModel
from omnichat.llm.types import (
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from omnichat.openai_api.schemas import ChatCompletionRequest
from omnichat.openai_api.translate import prompt_of

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], route_class=AuthenticateFirstRoute)


def _message(text: str, tool_calls: tuple[ToolCall, ...]) -> dict[str, Any]:
    """A reply as OpenAI's ``choices[].message``: ``content`` null when it only calls tools."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in tool_calls
        ]
    return message


def _tool_call_chunk(delta: ToolCallDelta) -> dict[str, Any]:
    """One streamed piece of a tool call, as OpenAI's ``delta.tool_calls[]`` entry: the first
    piece of a call has its id, type and name."""
    function: dict[str, Any] = {"arguments": delta.arguments}
    entry: dict[str, Any] = {"index": delta.index}
    if delta.id is not None:
        entry.update(id=delta.id, type="function")
    if delta.name is not None:
        function["name"] = delta.name
    entry["function"] = function
    return entry


def _usage(*usages: Usage) -> dict[str, int]:
    """OpenAI's ``usage`` for one or more choices: each choice is its own provider call, so its
    prompt tokens count too."""
    prompt = sum(usage.input_tokens or 0 for usage in usages)
    completion = sum(usage.output_tokens or 0 for usage in usages)
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
        **error_responses(400, 401, 404, 413, 429, 502, 503, 504, openai=True),
    },
)
async def chat_completions(
    body: ChatCompletionRequest, user: CurrentUser, generation: GenerationDep, request: Request
) -> JSONResponse | StreamingResponse:
    try:
        ref = generation.registry.resolve(body.model)
    except UnknownModel as unknown:
        # OpenAI's answer, which its SDKs raise as NotFoundError.
        raise NotFound(unknown.detail, param="model", code="model_not_found") from None
    prompt = prompt_of(body, generation.v1_system_prompt, generation.max_choices)
    choices = body.n or 1
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if not body.stream:
        generated = await unless_disconnected(
            request.receive,
            generation.generate(user.id, ref, prompt, rag=body.rag, choices=choices),
        )
        extra = {"sources": generated.sources} if generated.sources is not None else {}
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": generated.model.id,
                "choices": [
                    {
                        "index": index,
                        "message": _message(completion.text, completion.tool_calls),
                        "finish_reason": completion.finish_reason,
                        "logprobs": completion.logprobs,
                    }
                    for index, completion in enumerate(generated.completions)
                ],
                "usage": _usage(*(completion.usage for completion in generated.completions)),
                **extra,
            }
        )
    # Streamed and not stored: the slot is held for as long as the response streams.
    in_request = await generation.begin_request_reply(user.id)
    events: list[AsyncIterator[StreamEvent]] = []
    try:
        if body.rag:
            prompt = await generation.ground(user.id, prompt, ref)
        streams = [generation.stream(ref, choice) for choice in choice_prompts(prompt, choices)]
        events = [stream.__aiter__() for stream in streams]
        # The first event of each choice before any byte is sent: provider failures (after
        # retries and fallbacks) become a proper HTTP status instead of a broken stream.
        firsts = await all_or_none(anext(choice_events) for choice_events in events)
    except BaseException as error:
        # The choices whose first event did arrive hold provider connections: end them now.
        await close_streams(events)
        await generation.end_request_reply(in_request)
        if isinstance(error, asyncio.CancelledError) and in_request.take_back_cancel():
            assert in_request.ended is not None
            raise in_request.ended from None
        raise
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    chunks = _chunk_stream(
        generation,
        in_request,
        indexed(firsts[0], events[0]) if choices == 1 else merged(firsts, events),
        _ChunkMeta(
            completion_id, created, streams[0].model.id, include_usage, prompt.sources, choices
        ),
    )
    return EventStreamResponse(chunks)


def _stream_error(message: str, error_type: str) -> bytes:
    """OpenAI's in-stream error event (the SDKs raise it as ``APIError``), then ``[DONE]`` for
    clients that read up to the end marker."""
    return sse_data({"error": {"message": message, "type": error_type, "code": None}}) + DONE


@dataclass(frozen=True)
class _ChunkMeta:
    completion_id: str
    created: int
    model: str
    include_usage: bool
    sources: list[dict[str, Any]] | None
    choices: int


async def _chunk_stream(
    generation: GenerationService,
    in_request: RequestReply,
    events: AsyncGenerator[tuple[int, StreamEvent]],
    meta: _ChunkMeta,
) -> AsyncIterator[bytes]:
    """OpenAI's ``chat.completion.chunk`` events for ``events`` (``(choice index, event)``):
    each choice opens with its role and ends with its ``finish_reason``; usage (summed over the
    choices) last when asked for, then ``[DONE]``."""
    base = {
        "id": meta.completion_id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
    }

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse_data({**base, "choices": choices, **extra})

    def choice(index: int, delta: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"index": index, "delta": delta, "finish_reason": None, **extra}

    # Hot path: every content chunk is this template around the JSON-encoded token.
    templates = [
        chunk([choice(index, {"content": "\x00"})]).split(b'"\\u0000"')
        for index in range(meta.choices)
    ]
    try:
        for index in range(meta.choices):
            yield chunk([choice(index, {"role": "assistant", "content": ""})])
        usages: list[Usage] = []
        async with contextlib.aclosing(events):
            async for index, event in events:
                if isinstance(event, TextDelta):
                    if event.logprobs is not None:
                        delta: dict[str, Any] = {"content": event.text}
                        yield chunk([choice(index, delta, logprobs=event.logprobs)])
                        continue
                    prefix, suffix = templates[index]
                    yield prefix + json.dumps(event.text, ensure_ascii=False).encode() + suffix
                elif isinstance(event, ToolCallDelta):
                    delta = {"tool_calls": [_tool_call_chunk(event)]}
                    yield chunk([choice(index, delta)])
                else:
                    usages.append(event.usage)
                    # OmniChat's extension: a grounded answer's sources ride on its closing
                    # chunk.
                    extra = {"sources": meta.sources} if meta.sources is not None else {}
                    closing = {"index": index, "delta": {}, "finish_reason": event.finish_reason}
                    yield chunk([closing], **extra)
        if meta.include_usage:
            yield chunk([], usage=_usage(*usages))
        yield DONE
    except ProviderError as error:
        # After the first token the status is sent: OpenAI's in-stream error event instead.
        yield _stream_error(error.client_message, "provider_error")
    except asyncio.CancelledError:
        if not in_request.take_back_cancel():
            raise  # the client went away
        assert in_request.ended is not None  # the account was deleted, or shutdown
        ended = in_request.ended
        yield _stream_error(ended.detail, openai_error_type(ended.status_code))
    finally:
        await generation.end_request_reply(in_request)
