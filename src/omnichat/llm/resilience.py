"""One retry policy for every provider (SDK retries are off): retry what may succeed later,
only before the first token has reached the client, with capped exponential backoff and jitter
honouring Retry-After; then the fallback chain."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from omnichat.errors import UnsupportedField
from omnichat.llm.base import ChatModel
from omnichat.llm.errors import ProviderError, ProviderTimeout
from omnichat.llm.registry import ModelRef
from omnichat.llm.types import (
    Completion,
    GenerationRequest,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
)

logger = logging.getLogger("omnichat.llm")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 30.0
    first_token_timeout_s: float = 60.0

    def delay(self, attempt: int, error: ProviderError) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after_s)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto


Candidate = tuple[ModelRef, ChatModel]
RequestFor = Callable[[ModelRef], GenerationRequest]


def _prepared(
    index: int, ref: ModelRef, chat_model: ChatModel, request_for: RequestFor
) -> GenerationRequest | None:
    """``ref``'s request, when it and ``chat_model`` can carry every field of it. The first
    candidate's ``UnsupportedField`` is the client's answer (400); a fallback that cannot carry
    a field (or read an image) is skipped (None) rather than sent the request without it."""
    try:
        request = request_for(ref)
        chat_model.check(request)
    except UnsupportedField as refusal:
        if index == 0:
            raise
        logger.info("fallback skipped", extra={"model": ref.id, "field": refusal.param})
        return None
    return request


class ResilientStream:
    """Iterate for events; afterwards ``model`` is the model that answered."""

    def __init__(self, candidates: list[Candidate], request_for: RequestFor, policy: RetryPolicy):
        self._candidates = candidates
        self._request_for = request_for
        self._policy = policy
        self.model: ModelRef = candidates[0][0]

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        last_error: ProviderError | None = None
        for index, (ref, chat_model) in enumerate(self._candidates):
            request = _prepared(index, ref, chat_model, self._request_for)
            if request is None:
                continue
            self.model = ref
            for attempt in range(self._policy.max_attempts):
                started = False
                try:
                    async for event in self._first_token_guarded(chat_model, request):
                        started = started or isinstance(event, (TextDelta, ToolCallDelta))
                        yield event
                    return
                except ProviderError as error:
                    if started:
                        raise  # the client has tokens: a retry would repeat them
                    last_error = error
                    logger.warning(
                        "provider attempt failed",
                        extra={"model": ref.id, "attempt": attempt + 1, "error": error.message},
                    )
                    if not error.retryable:
                        break
                    if attempt + 1 < self._policy.max_attempts:
                        await asyncio.sleep(self._policy.delay(attempt, error))
        assert last_error is not None
        raise last_error

    async def _first_token_guarded(
        self, chat_model: ChatModel, request: GenerationRequest
    ) -> AsyncIterator[StreamEvent]:
        events = chat_model.stream(request).__aiter__()
        try:
            async with asyncio.timeout(self._policy.first_token_timeout_s):
                first = await anext(events)
        except TimeoutError as exc:
            raise ProviderTimeout("no first token in time", provider=chat_model.provider) from exc
        except StopAsyncIteration:
            return
        yield first
        async for event in events:
            yield event


async def resilient_generate(
    candidates: list[Candidate], request_for: RequestFor, policy: RetryPolicy
) -> tuple[Completion, ModelRef]:
    """Non-streaming: the same policy, any failure is before the client has anything."""
    last_error: ProviderError | None = None
    for index, (ref, chat_model) in enumerate(candidates):
        request = _prepared(index, ref, chat_model, request_for)
        if request is None:
            continue
        for attempt in range(policy.max_attempts):
            try:
                async with asyncio.timeout(policy.first_token_timeout_s):
                    return await chat_model.generate(request), ref
            except TimeoutError:
                last_error = ProviderTimeout("no answer in time", provider=chat_model.provider)
            except ProviderError as error:
                last_error = error
                if not error.retryable:
                    break
            if attempt + 1 < policy.max_attempts:
                await asyncio.sleep(policy.delay(attempt, last_error))
    assert last_error is not None
    raise last_error
