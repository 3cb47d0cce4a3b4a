"""Generate endpoints of the three dialects, the live-reply controls, and the model list."""

from __future__ import annotations

import asyncio
import contextlib
import functools

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from omnichat.authenticate_first import AuthenticateFirstRoute
from omnichat.chats.models import Message, Role
from omnichat.deps import CurrentUser, GenerationDep, SettingsDep
from omnichat.errors import AppError, BadGateway, NotFound, ProviderDeclined, error_responses
from omnichat.generation.hub import ReplyFinal
from omnichat.generation.schemas import (
    ChatStreamRequest,
    CohereGenerateRequest,
    CohereGenerateResponse,
    InferenceQueryRequest,
    InferenceQueryResponse,
    ModelOut,
    ModelsResponse,
    StopResponse,
)
from omnichat.generation.service import GenerationService, Prompt
from omnichat.generation.sse import (
    EventStreamResponse,
    reply_events,
    stored_reply_events,
    unless_disconnected,
)
from omnichat.llm.types import CONTENT_FILTER, Completion, Usage, declined_message

router = APIRouter(tags=["generation"], route_class=AuthenticateFirstRoute)
REPLY_NOT_FOUND = "Reply not found"
STOP_WAIT_S = 30.0
# 400: an unknown model; 404: another user's or a missing session; 429: the caller's rate or
# concurrency limit; 503: the document index is unavailable (RAG).
STREAM_ERRORS = error_responses(400, 401, 404, 413, 422, 429, 503)
# Not streamed: the provider's final failure is the status (502, 504; 429 when rate limited;
# 422 when it declined, e.g. for safety; 404 when the session was deleted meanwhile).
GENERATE_ERRORS = error_responses(400, 401, 404, 413, 422, 429, 502, 503, 504)
REPLY_ERRORS = error_responses(401, 404, 422)
# 429: the user's followers of running replies are all taken.
REATTACH_ERRORS = error_responses(401, 404, 422, 429)


@router.get("/models", response_model=ModelsResponse, responses=error_responses(401))
async def list_models(user: CurrentUser, generation: GenerationDep) -> ModelsResponse:
    registry = generation.registry
    return ModelsResponse(
        models=[
            ModelOut(
                id=ref.id, provider=ref.provider, model=ref.model, default=ref == registry.default
            )
            for ref in registry.available()
        ],
        default=registry.default.id,
        offline=registry.offline,
    )


@router.post(
    "/chat/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **STREAM_ERRORS},
)
async def chat_stream(
    body: ChatStreamRequest, user: CurrentUser, generation: GenerationDep, settings: SettingsDep
) -> StreamingResponse:
    """Seed 001: stores the prompt, streams ``data: {"delta": ...}`` events and ``data: [DONE]``,
    stores the reply when it ends (also if the client has gone)."""
    ref = generation.registry.resolve(body.model, provider=body.provider)
    reply, _ = await generation.start_stored_reply(
        user.id, body.session_id, body.prompt, ref, rag=body.rag
    )
    return EventStreamResponse(reply_events(generation.hub, reply, settings.stream_keepalive_s))


@router.get(
    "/chat/stream/{message_id}",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **REATTACH_ERRORS},
)
async def reattach(
    message_id: str, user: CurrentUser, generation: GenerationDep, settings: SettingsDep
) -> StreamingResponse:
    """Re-attach to a running or finished reply: everything sent so far, then what follows.
    Following a running reply holds one of the user's follower slots until the client leaves
    (429 with ``Retry-After`` when all are taken)."""
    live = await generation.hub.find(message_id, user.id)
    # Read after the hub answered: a reply that has just left the hub is stored by then.
    stored = await _stored_reply(generation, user.id, message_id)
    if live is not None:
        followers = generation.limiter.followers
        await followers.acquire(user.id)
        return EventStreamResponse(
            reply_events(generation.hub, live, settings.stream_keepalive_s),
            on_close=functools.partial(followers.release, user.id),
        )
    final = ReplyFinal(
        status=stored.status,
        model=stored.model or "",
        finish_reason=stored.finish_reason,
        usage=Usage(stored.input_tokens, stored.output_tokens),
        error=stored.error,
        sources=stored.sources,
        code="refused" if stored.finish_reason == CONTENT_FILTER else None,
    )
    return EventStreamResponse(stored_reply_events(stored.id, stored.content, final))


@router.post("/chat/stop/{message_id}", response_model=StopResponse, responses=REPLY_ERRORS)
async def stop(
    message_id: str, user: CurrentUser, generation: GenerationDep, settings: SettingsDep
) -> StopResponse:
    """Stop a running reply; it is stored with what was generated and status ``stopped``."""
    await _stored_reply(generation, user.id, message_id)
    live = await generation.hub.find(message_id, user.id)
    if live is not None:
        await generation.hub.request_stop(message_id, user.id)
        # Stopped, or finishing on its own meanwhile: answer once the producing worker (this one
        # or another) has stored it, with the status it was stored with.
        with contextlib.suppress(TimeoutError):  # then report what is stored
            async with asyncio.timeout(STOP_WAIT_S):
                async for item in generation.hub.follow(live, 0, settings.stream_keepalive_s):
                    if isinstance(item, ReplyFinal):
                        return StopResponse(message_id=message_id, status=item.status)
    stored = await _stored_reply(generation, user.id, message_id)
    return StopResponse(message_id=message_id, status=stored.status)


async def _stored_reply(generation: GenerationService, user_id: str, message_id: str) -> Message:
    """The caller's reply as stored, or 404. The database decides whether a reply exists: a
    live reply (in this process, or in Redis for another worker) may outlast its deleted row
    for a while, and must not be served then."""
    stored = await generation.stored_message(user_id, message_id)
    if stored is None or stored.role != Role.ASSISTANT.value:
        raise NotFound(REPLY_NOT_FOUND)
    return stored


@router.post("/inference/query", response_model=InferenceQueryResponse, responses=GENERATE_ERRORS)
async def inference_query(
    body: InferenceQueryRequest, user: CurrentUser, generation: GenerationDep, request: Request
) -> InferenceQueryResponse:
    """Seed 003: the whole reply as ``{"response": ...}``; stored when ``session_id`` is given."""
    ref = generation.registry.resolve(body.model)
    if body.session_id is None:
        generated = await unless_disconnected(
            request.receive,
            generation.generate(user.id, ref, Prompt(body.query), rag=body.enable_rag),
        )
        _refuse_declined(generated.completion)
        return InferenceQueryResponse(
            response=generated.completion.text,
            model=generated.model.id,
            sources=generated.sources or [],
        )
    reply, _ = await generation.start_stored_reply(
        user.id, body.session_id, body.query, ref, rag=body.enable_rag
    )
    assert reply.task is not None
    # Waited for, not awaited: a client that goes away does not cancel the reply (it is
    # stored regardless), and however the task ended, ``reply.final`` says how the reply did.
    await asyncio.wait([reply.task])
    final = reply.final
    assert final is not None
    if final.status == "error":
        raise _failure(final)
    return InferenceQueryResponse(
        response=reply.text(),
        model=final.model,
        session_id=reply.session_id,
        message_id=reply.message_id,
        sources=reply.sources or [],
    )


@router.post(
    "/api/cohere/generate", response_model=CohereGenerateResponse, responses=GENERATE_ERRORS
)
async def cohere_generate(
    body: CohereGenerateRequest,
    user: CurrentUser,
    generation: GenerationDep,
    request: Request,
) -> CohereGenerateResponse:
    """Seed 000: ``{"text": ...}``, nothing stored. With ``session`` its history is the context
    (the client has usually stored this prompt already; it is not sent twice)."""
    registry = generation.registry
    ref = registry.resolve(body.model or ("cohere" if "cohere" in registry.providers else None))
    history = []
    if body.session is not None:
        history = await generation.load_history(
            user.id, body.session, token_budget=generation.history_budget(ref)
        )
        if history and history[-1].role == "user" and history[-1].content == body.prompt:
            history = history[:-1]
    generated = await unless_disconnected(
        request.receive, generation.generate(user.id, ref, Prompt(body.prompt, history))
    )
    _refuse_declined(generated.completion)
    return CohereGenerateResponse(text=generated.completion.text, model=generated.model.id)


def _failure(final: ReplyFinal) -> AppError:
    """The HTTP error of a stored reply that ended in ``error`` (its text is already written
    for the client, e.g. "The openai provider failed: ...")."""
    detail = final.error or "The reply could not be generated"
    if final.code == "deleted":
        return NotFound(detail)
    if final.code == "refused":
        return ProviderDeclined(detail)
    return BadGateway(detail)


def _refuse_declined(completion: Completion) -> None:
    """The seed endpoints answer a refusal with a clear error, not an empty 200."""
    if completion.finish_reason == CONTENT_FILTER:
        raise ProviderDeclined(declined_message(completion.refusal))
