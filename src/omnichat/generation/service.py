"""Generating replies: context, the provider call under the retry policy, persistence and the
live stream.

A stored reply is written twice, never per token: before the call (the user's message and an
empty assistant message with status ``streaming``) and once when it ends (content, status,
usage). The provider call runs in its own task, so it outlives the request that started it: a
client that disconnects finds the full reply stored, and can re-attach while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import Any, Literal

from sqlalchemy import literal, select, update

from omnichat.chats.models import Message, MessageStatus
from omnichat.chats.service import HISTORY_PAGE_ROWS, ChatService, ConversationRow
from omnichat.db.base import utcnow
from omnichat.db.engine import Database
from omnichat.db.unit_of_work import unit_of_work
from omnichat.errors import UnsupportedField
from omnichat.generation.choices import all_or_none
from omnichat.generation.hub import LiveReply, ReplyFinal, RequestReply, StreamHub
from omnichat.generation.limits import GenerationLimiter
from omnichat.generation.store import FinishedReplyWriter
from omnichat.llm.context import StoredTurn, clean_history, estimate_tokens, fit_to_budget
from omnichat.llm.errors import ProviderError
from omnichat.llm.registry import ModelRef, ModelRegistry
from omnichat.llm.resilience import Candidate, ResilientStream, RetryPolicy, resilient_generate
from omnichat.llm.types import (
    CONTENT_FILTER,
    ChatTurn,
    Completion,
    GenerationRequest,
    ImagePart,
    Sampling,
    StreamEnd,
    TextDelta,
    Tools,
    declined_message,
)
from omnichat.rag.grounding import Grounder, Grounding

logger = logging.getLogger("omnichat.generation")
INTERRUPTED = "The reply was interrupted (server restart)"
ORPHAN_HEARTBEATS = 3


@dataclass(frozen=True)
class GenerationOptions:
    system_prompt: str
    v1_system_prompt: bool
    max_output_tokens: int
    max_generation_s: float
    policy: RetryPolicy
    # A process refreshes its running replies' rows this often; a ``streaming`` row not
    # refreshed for ORPHAN_HEARTBEATS intervals belongs to a process that died.
    heartbeat_s: float = 30.0
    # /v1's ``n`` at most (OMNICHAT_MAX_CHOICES).
    max_choices: int = 8


@dataclass(frozen=True)
class Prompt:
    """What the client asked: the new user text and, optionally, the conversation before it
    (stored turns, cleaned and trimmed to the context). ``conversation``: a /v1 client's
    messages, sent exactly as given, ``text`` being its last user message (what grounding
    retrieves for and answers); ``operator_prompt``: whether OMNICHAT_SYSTEM_PROMPT leads."""

    text: str
    history: Sequence[StoredTurn] = ()
    system_notes: Sequence[str] = field(default_factory=tuple)
    max_tokens: int | None = None
    sampling: Sampling = field(default_factory=Sampling)
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = None
    conversation: tuple[ChatTurn, ...] | None = None
    operator_prompt: bool = True
    tools: Tools = field(default_factory=Tools)
    # Set by ``ground``: the model gets the text with its sources instead of ``text``.
    grounding: Grounding | None = None

    @property
    def sources(self) -> list[dict[str, Any]] | None:
        return self.grounding.sources if self.grounding else None


@dataclass(frozen=True)
class Generated:
    """``completions``: one per choice asked for, in order; ``model``: the first's."""

    completions: tuple[Completion, ...]
    model: ModelRef
    sources: list[dict[str, Any]] | None

    @property
    def completion(self) -> Completion:
        return self.completions[0]


def choice_prompts(prompt: Prompt, choices: int) -> list[Prompt]:
    """The prompt of each of ``choices`` choices (OpenAI's ``n``), each its own provider call.
    With a ``seed``, choice ``i`` gets ``seed + i``: reproducible, and the choices differ as
    OpenAI's own do (one call with the seed would give ``n`` equal ones)."""
    seed = prompt.sampling.seed
    if choices == 1 or seed is None:
        return [prompt] * choices
    return [
        replace(prompt, sampling=replace(prompt.sampling, seed=seed + index))
        for index in range(choices)
    ]


class GenerationService:
    def __init__(
        self,
        database: Database,
        registry: ModelRegistry,
        chats: ChatService,
        hub: StreamHub,
        limiter: GenerationLimiter,
        options: GenerationOptions,
        grounder: Grounder,
    ) -> None:
        self._database = database
        self.registry = registry
        self._chats = chats
        self.hub = hub
        self.limiter = limiter
        self._options = options
        self._grounder = grounder
        self._finished = FinishedReplyWriter(database)
        self._releases: set[asyncio.Future[None]] = set()

    @property
    def v1_system_prompt(self) -> bool:
        """Whether ``/v1`` requests get the operator's system prompt (OMNICHAT_V1_SYSTEM_PROMPT)."""
        return self._options.v1_system_prompt

    @property
    def max_choices(self) -> int:
        """The most choices (``n``) one ``/v1`` request may ask for (OMNICHAT_MAX_CHOICES)."""
        return self._options.max_choices

    # -- context ------------------------------------------------------------------------------

    async def ground(self, user_id: str, prompt: Prompt, ref: ModelRef) -> Prompt:
        """The prompt with passages from the user's documents (unchanged if they have none),
        as many of the best as fit the smallest context in ``ref``'s fallback chain: the
        lowest-ranked are dropped first (history is trimmed after, by ``build_request``), so a
        question never fails because retrieval found too much. Callers hold the user's
        generation slot: retrieval costs an embedding."""
        grounding = await self._grounder.ground(user_id, prompt.text)
        if grounding is None:
            return prompt
        budget = min(self._input_budget(r, prompt) for r in self.registry.candidates(ref))
        while True:
            grounded = replace(prompt, grounding=grounding)
            fixed = estimate_tokens(grounding.model_text) + estimate_tokens(
                self._system_text(grounded)
            )
            if fixed <= budget or not grounding.sources:
                return grounded
            grounding = grounding.top(len(grounding.sources) - 1)

    def build_request(self, ref: ModelRef, prompt: Prompt) -> GenerationRequest:
        """``ref``'s request for ``prompt``. ``UnsupportedField`` naming the part when the
        conversation holds an image and ``ref`` reads none."""
        system = self._system_text(prompt)
        question = prompt.grounding.model_text if prompt.grounding else prompt.text
        if prompt.conversation is not None:
            if not self.registry.reads_images(ref):
                _refuse_images(prompt.conversation, ref)
            turns = _with_question(prompt.conversation, question)
        else:
            turns = fit_to_budget(
                clean_history(prompt.history),
                question,
                system=system or None,
                budget_tokens=self._input_budget(ref, prompt),
            )
        return GenerationRequest(
            model=ref.model,
            messages=turns,
            system=system or None,
            max_tokens=self._max_tokens(prompt),
            sampling=prompt.sampling,
            max_tokens_param=prompt.max_tokens_param,
            tools=prompt.tools,
        )

    def _system_text(self, prompt: Prompt) -> str:
        notes = [*prompt.system_notes]
        if prompt.grounding:
            notes.append(prompt.grounding.system_note)
        operator = self._options.system_prompt if prompt.operator_prompt else ""
        return "\n\n".join([operator, *notes]).strip()

    def _max_tokens(self, prompt: Prompt) -> int:
        """The client's limit, never above OMNICHAT_MAX_OUTPUT_TOKENS (a ceiling, not a
        default)."""
        ceiling = self._options.max_output_tokens
        return min(prompt.max_tokens or ceiling, ceiling)

    def _input_budget(self, ref: ModelRef, prompt: Prompt) -> int:
        """Tokens ``ref``'s context leaves for the system prompt, history and the new turn."""
        return max(self.registry.context_tokens(ref) - self._max_tokens(prompt), 256)

    def history_budget(self, ref: ModelRef) -> int:
        """Tokens of history worth reading for ``ref``: the largest context in its fallback chain
        (``build_request`` trims to each model's own)."""
        return max(self.registry.context_tokens(r) for r in self.registry.candidates(ref))

    async def load_history(
        self, user_id: str, session_id: str, *, token_budget: int, check_owner: bool = True
    ) -> list[StoredTurn]:
        """The session's messages, oldest first, from the newest back to where the complete
        exchanges alone exceed ``token_budget``: read newest first a page at a time, so that a
        long session costs what can fit, not its length (anything older could never be sent).
        In a short transaction of its own: nothing is held open during the provider call.
        Without ``check_owner`` a foreign session reads as empty; callers that skip the check
        must verify ownership when they write."""
        newest_first: list[ConversationRow] = []
        async with self._database.reader() as db:
            if check_owner:
                await self._chats.get_session(db, user_id, session_id)
            before = None
            while True:
                page = await self._chats.conversation_page(db, user_id, session_id, before=before)
                newest_first.extend(page)
                if len(page) < HISTORY_PAGE_ROWS or _exceeds(newest_first, token_budget):
                    break
                before = page[-1]
        return [StoredTurn(row.role, row.content, row.status) for row in reversed(newest_first)]

    # -- one-shot, nothing stored ---------------------------------------------------------------

    async def generate(
        self, user_id: str, ref: ModelRef, prompt: Prompt, *, rag: bool = False, choices: int = 1
    ) -> Generated:
        """Under the user's rate and concurrency limits (429 when exceeded; ``choices`` calls,
        run concurrently, hold one slot). 404 when the account is deleted meanwhile, 503 when
        the server shuts down before it is done; the first
        failing choice's error, the others cancelled."""
        in_request = await self.begin_request_reply(user_id)
        try:
            if rag:
                prompt = await self.ground(user_id, prompt, ref)
            results = await all_or_none(
                resilient_generate(
                    self._candidates(ref),
                    partial(self.build_request, prompt=choice),
                    self._options.policy,
                )
                for choice in choice_prompts(prompt, choices)
            )
            completions = tuple(completion for completion, _ in results)
            return Generated(completions, results[0][1], prompt.sources)
        except asyncio.CancelledError:
            if not in_request.take_back_cancel():
                raise
            assert in_request.ended is not None
            raise in_request.ended from None
        finally:
            await self.end_request_reply(in_request)

    async def begin_request_reply(self, user_id: str) -> RequestReply:
        """Takes one of the user's concurrency slots (429 when none is free) for a reply made
        inside the calling request, and registers it so that deleting the account ends it;
        ``end_request_reply`` gives both back."""
        await self.limiter.acquire(user_id)
        return self.hub.begin_request_reply(user_id)

    async def end_request_reply(self, in_request: RequestReply) -> None:
        self.hub.end_request_reply(in_request)
        await self.limiter.release(in_request.user_id)

    def stream(
        self, ref: ModelRef, prompt: Prompt, request: GenerationRequest | None = None
    ) -> ResilientStream:
        """``request``: ``ref``'s request, when the caller has built it already."""

        def request_for(candidate: ModelRef) -> GenerationRequest:
            if request is not None and candidate == ref:
                return request
            return self.build_request(candidate, prompt)

        return ResilientStream(self._candidates(ref), request_for, self._options.policy)

    # -- stored replies -----------------------------------------------------------------------

    async def start_stored_reply(
        self,
        user_id: str,
        session_id: str | None,
        prompt_text: str,
        ref: ModelRef,
        *,
        rag: bool = False,
    ) -> tuple[LiveReply, Message]:
        """Stores the user's message and an empty assistant message (in a new session when
        ``session_id`` is None), then starts the provider call in the background. Takes one of
        the user's concurrency slots (429 when none is free); the task gives it back."""
        await self.limiter.acquire(user_id)
        try:
            return await self._start_stored_reply(user_id, session_id, prompt_text, ref, rag)
        except BaseException:
            await self.limiter.release(user_id)
            raise

    async def _start_stored_reply(
        self, user_id: str, session_id: str | None, prompt_text: str, ref: ModelRef, rag: bool
    ) -> tuple[LiveReply, Message]:
        # History is read before the write transaction: on SQLite that one holds the write lock.
        # add_exchange checks ownership (404) under the write lock.
        history = []
        if session_id:
            budget = self.history_budget(ref)
            history = await self.load_history(
                user_id, session_id, token_budget=budget, check_owner=False
            )
        prompt = Prompt(prompt_text, history)
        if rag:
            prompt = await self.ground(user_id, prompt, ref)
        # Fail before storing anything if the prompt cannot fit the model.
        request = self.build_request(ref, prompt)
        async with unit_of_work(self._database.writer) as db:
            if session_id is None:
                session_id = (await self._chats.create_session(db, user_id)).id
            user_message, reply_message = await self._chats.add_exchange(
                db,
                user_id,
                session_id,
                prompt=prompt_text,
                reply_model=ref.id,
                reply_sources=prompt.sources,
            )
        reply = LiveReply(
            message_id=reply_message.id,
            user_id=user_id,
            session_id=session_id,
            model=ref.id,
            sources=prompt.sources,
        )
        self.hub.register(reply)
        reply.task = asyncio.create_task(self._run(reply, self.stream(ref, prompt, request)))
        reply.task.add_done_callback(partial(self._settle_unfinished, reply))
        return reply, user_message

    def _settle_unfinished(self, reply: LiveReply, task: asyncio.Task[None]) -> None:
        """A task cancelled before its first step (at shutdown) never ran ``_run``, so nothing
        ended the reply: end it here, so that no follower waits forever and the user's slot is
        given back. Its row stays ``streaming`` until the heartbeat marks it interrupted."""
        if reply.final is not None:
            return
        reply.finish(
            ReplyFinal(
                "error",
                reply.model,
                "error",
                error=reply.abandoned or INTERRUPTED,
                code="deleted" if reply.abandoned else None,
            )
        )
        release = asyncio.ensure_future(self.limiter.release(reply.user_id))
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)

    async def _run(self, reply: LiveReply, stream: ResilientStream) -> None:
        reply.started = True
        final = await self._produce(reply, stream) if reply.abandoned is None else None
        try:
            if reply.abandoned is None:
                assert final is not None
                if reply.sources is not None:
                    final = replace(final, sources=reply.sources)
                reply.storing = True
                await self._store_final(reply, final)
        finally:
            if reply.abandoned is not None:
                # Its rows are gone: nothing to store, and its followers learn why it ended.
                final = ReplyFinal(
                    "error", stream.model.id, "error", error=reply.abandoned, code="deleted"
                )
            assert final is not None
            reply.finish(final)
            await self.limiter.release(reply.user_id)

    async def _produce(self, reply: LiveReply, stream: ResilientStream) -> ReplyFinal:
        """Runs the provider call into ``reply``; how it ended, as the reply is stored."""
        if reply.stop_requested:  # before the task had started
            return ReplyFinal("stopped", stream.model.id, "stopped")
        try:
            async with asyncio.timeout(self._options.max_generation_s):
                end = StreamEnd()
                async for event in stream:
                    if isinstance(event, TextDelta):
                        reply.append(event.text)
                    elif isinstance(event, StreamEnd):
                        end = event
                    # Stored replies offer no tools, so no ToolCallDelta comes.
            if end.finish_reason == CONTENT_FILTER:
                return ReplyFinal(
                    "error",
                    stream.model.id,
                    CONTENT_FILTER,
                    end.usage,
                    error=declined_message(end.refusal),
                    code="refused",
                )
            return ReplyFinal("complete", stream.model.id, end.finish_reason, end.usage)
        except ProviderError as error:
            return ReplyFinal("error", stream.model.id, "error", error=error.client_message)
        except TimeoutError:
            return ReplyFinal(
                "error", stream.model.id, "error", error="The reply took too long and was cut"
            )
        except asyncio.CancelledError:
            if reply.abandoned is not None:
                return ReplyFinal("error", stream.model.id, "error", error=reply.abandoned)
            if reply.stop_requested:
                return ReplyFinal("stopped", stream.model.id, "stopped")
            return ReplyFinal(
                "error", stream.model.id, "error", error="The server stopped while replying"
            )
        except Exception:
            logger.exception("generation failed", extra={"message_id": reply.message_id})
            return ReplyFinal("error", stream.model.id, "error", error="Internal error")

    async def _store_final(self, reply: LiveReply, final: ReplyFinal) -> None:
        row = {
            "id": reply.message_id,
            "content": reply.text(),
            "status": final.status,
            "model": final.model,
            "finish_reason": final.finish_reason,
            "input_tokens": final.usage.input_tokens,
            "output_tokens": final.usage.output_tokens,
            "error": final.error,
            "updated_at": utcnow(),
        }
        for attempt in range(3):
            try:
                await self._finished.store(row, reply.session_id)
                return
            except Exception:
                logger.exception(
                    "storing a finished reply failed",
                    extra={"message_id": reply.message_id, "attempt": attempt + 1},
                )
                await asyncio.sleep(0.5 * (attempt + 1))

    async def stored_message(self, user_id: str, message_id: str) -> Message | None:
        async with self._database.reader() as db:
            return (
                await db.execute(
                    select(Message).where(Message.id == message_id, Message.user_id == user_id)
                )
            ).scalar_one_or_none()

    async def mark_interrupted(self) -> int:
        """Refreshes the rows of this process's running replies, then marks the replies left
        ``streaming`` by a process that died (no refresh for ORPHAN_HEARTBEATS intervals) as
        interrupted, in one short transaction. Run at start-up and every ``heartbeat_s``."""
        now = utcnow()
        cutoff = now - timedelta(seconds=ORPHAN_HEARTBEATS * self._options.heartbeat_s)
        # Inline, not a bound parameter: the planner matches it to the partial index on
        # streaming rows (a generic PostgreSQL plan would not).
        streaming = Message.status == literal(MessageStatus.STREAMING.value, literal_execute=True)
        async with unit_of_work(self._database.writer) as db:
            running = self.hub.running()
            if running:
                await db.execute(
                    update(Message)
                    .where(Message.id.in_(running), streaming)
                    .values(updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            result = await db.execute(
                update(Message)
                .where(streaming, Message.updated_at < cutoff)
                .values(status=MessageStatus.ERROR.value, error=INTERRUPTED, finish_reason="error")
                .execution_options(synchronize_session=False)
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def watch_replies(self) -> None:
        """Runs ``mark_interrupted`` every ``heartbeat_s`` until cancelled: this process's
        replies stay fresh, and a dead process's are marked within ORPHAN_HEARTBEATS
        intervals, with no restart needed."""
        while True:
            await asyncio.sleep(self._options.heartbeat_s)
            try:
                marked = await self.mark_interrupted()
            except Exception:
                logger.exception("reply heartbeat failed")
                continue
            if marked:
                logger.warning("marked interrupted replies", extra={"count": marked})

    def _candidates(self, ref: ModelRef) -> list[Candidate]:
        return [(r, self.registry.chat_model(r)) for r in self.registry.candidates(ref)]


def _refuse_images(conversation: tuple[ChatTurn, ...], ref: ModelRef) -> None:
    for index, turn in enumerate(conversation):
        for number, part in enumerate(turn.parts):
            if isinstance(part, ImagePart):
                raise UnsupportedField(
                    f"messages[{index}].content[{number}]",
                    ref.id,
                    "this model reads text only (OMNICHAT_TEXT_ONLY_MODELS)",
                )


def _with_question(conversation: tuple[ChatTurn, ...], question: str) -> tuple[ChatTurn, ...]:
    """``conversation`` with its last user turn's text replaced by ``question`` (the same text,
    or it with the passages grounding found)."""
    for index in range(len(conversation) - 1, -1, -1):
        if conversation[index].role == "user":
            if conversation[index].content == question:
                return conversation
            turns = list(conversation)
            turns[index] = ChatTurn("user", question)
            return tuple(turns)
    return conversation


def _exceeds(newest_first: list[ConversationRow], token_budget: int) -> bool:
    """Whether the complete exchanges among these rows already cost more than ``token_budget``:
    then no older exchange can be sent (history is trimmed oldest first), and a reply whose
    prompt is older than these rows is dropped in any case."""
    turns = clean_history([StoredTurn(r.role, r.content, r.status) for r in reversed(newest_first)])
    return sum(estimate_tokens(turn.content) for turn in turns) > token_budget
