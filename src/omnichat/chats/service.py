"""Chat sessions and their messages. Every lookup is scoped to the owner: another user's id is
indistinguishable from a missing one. Services flush; the request dependency commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.chats.models import ChatSession, Message, MessageStatus, Role
from omnichat.db.base import UTCDateTime, utcnow
from omnichat.db.unit_of_work import after_commit
from omnichat.errors import InvalidInput, NotFound
from omnichat.ids import new_id

SESSION_NOT_FOUND = "Session not found"
MESSAGE_NOT_FOUND = "Message not found"
AUTO_TITLE_CHARS = 60
# What the followers of a reply still streaming are told when its rows are deleted.
SESSION_DELETED = "The conversation was deleted while the reply was being generated"
MESSAGES_CLEARED = "The conversation's messages were deleted while the reply was being generated"
REPLY_DELETED = "The reply was deleted while it was being generated"


class RunningReplies(Protocol):
    """The live replies (``generation.hub``), as the deletes here need them."""

    async def abandon(self, message_ids: Sequence[str], reason: str) -> None: ...


@dataclass(frozen=True)
class ConversationRow:
    role: str
    content: str
    status: str
    created_at: datetime
    id: str


@dataclass(frozen=True)
class ContentLimits:
    max_title_chars: int
    max_message_chars: int


def title_from_message(content: str, max_chars: int = AUTO_TITLE_CHARS) -> str | None:
    words = " ".join(content.split())
    if not words:
        return None
    if len(words) <= max_chars:
        return words
    cut = words[:max_chars].rsplit(" ", 1)[0] or words[:max_chars]
    return cut + "…"


# The statements every generation runs, built once (building them costs more than running them).
HISTORY_PAGE_ROWS = 200
_CONVERSATION_PAGE = (
    select(Message.role, Message.content, Message.status, Message.created_at, Message.id)
    .where(Message.session_id == bindparam("session_id"), Message.user_id == bindparam("user_id"))
    .order_by(Message.created_at.desc(), Message.id.desc())
    .limit(HISTORY_PAGE_ROWS)
)
_CONVERSATION_PAGE_BEFORE = _CONVERSATION_PAGE.where(
    or_(
        Message.created_at < bindparam("before_at"),
        and_(Message.created_at == bindparam("before_at"), Message.id < bindparam("before_id")),
    )
)
_BUMP_AND_TITLE = (
    update(ChatSession)
    .where(ChatSession.id == bindparam("b_session"), ChatSession.user_id == bindparam("b_owner"))
    .values(
        updated_at=bindparam("b_now", type_=UTCDateTime()),
        title=func.coalesce(ChatSession.title, bindparam("b_title", type_=String())),
    )
    .execution_options(synchronize_session=False)
)
_INSERT_MESSAGES = insert(Message.__table__)  # type: ignore[arg-type]


def _message_row(
    session_id: str,
    user_id: str,
    role: Role,
    content: str,
    status: MessageStatus,
    model: str | None,
    sources: list[dict[str, Any]] | None,
    at: datetime,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "session_id": session_id,
        "user_id": user_id,
        "role": role.value,
        "content": content,
        "status": status.value,
        "model": model,
        "sources": sources,
        "created_at": at,
        "updated_at": at,
    }


class ChatService:
    def __init__(self, limits: ContentLimits, replies: RunningReplies) -> None:
        self._limits = limits
        self._replies = replies

    # -- sessions -----------------------------------------------------------------------------

    async def create_session(
        self, db: AsyncSession, user_id: str, title: str | None = None
    ) -> ChatSession:
        session = ChatSession(user_id=user_id, title=self._clean_title(title))
        db.add(session)
        await db.flush()
        return session

    async def list_sessions(
        self, db: AsyncSession, user_id: str, *, limit: int, offset: int
    ) -> list[ChatSession]:
        rows = await db.execute(
            select(ChatSession)
            .where(ChatSession.user_id == user_id)
            .order_by(ChatSession.updated_at.desc(), ChatSession.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list(rows.scalars())

    async def get_session(
        self, db: AsyncSession, user_id: str, session_id: str, *, for_update: bool = False
    ) -> ChatSession:
        """The caller's session. ``for_update`` locks its row (PostgreSQL) so a concurrent delete
        waits for this transaction instead of racing it; SQLite's write lock already does that."""
        query = select(ChatSession).where(
            ChatSession.id == session_id, ChatSession.user_id == user_id
        )
        if for_update:
            query = query.with_for_update()
        session = (await db.execute(query)).scalar_one_or_none()
        if session is None:
            raise NotFound(SESSION_NOT_FOUND)
        return session

    async def rename_session(
        self, db: AsyncSession, user_id: str, session_id: str, title: str | None
    ) -> ChatSession:
        title = self._clean_title(title)
        session = await self.get_session(db, user_id, session_id, for_update=True)
        session.title = title
        session.updated_at = utcnow()
        await db.flush()
        return session

    async def delete_session(self, db: AsyncSession, user_id: str, session_id: str) -> None:
        session = await self.get_session(db, user_id, session_id, for_update=True)
        # Explicit rather than trusting ON DELETE CASCADE (SQLite needs a pragma for it).
        await self.delete_messages(db, Message.session_id == session.id, SESSION_DELETED)
        await db.execute(delete(ChatSession).where(ChatSession.id == session.id))

    # -- messages -----------------------------------------------------------------------------

    async def list_messages(
        self,
        db: AsyncSession,
        user_id: str,
        session_id: str,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Message]:
        await self.get_session(db, user_id, session_id)
        query = (
            select(Message)
            .where(Message.session_id == session_id, Message.user_id == user_id)
            .order_by(Message.created_at, Message.id)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        return list((await db.execute(query)).scalars())

    async def conversation_page(
        self,
        db: AsyncSession,
        user_id: str,
        session_id: str,
        *,
        before: ConversationRow | None = None,
    ) -> list[ConversationRow]:
        """Up to HISTORY_PAGE_ROWS of the caller's messages in a session, newest first, older
        than ``before``; one light query without the existence check (an empty list for a
        foreign session)."""
        parameters: dict[str, Any] = {"session_id": session_id, "user_id": user_id}
        statement = _CONVERSATION_PAGE
        if before is not None:
            statement = _CONVERSATION_PAGE_BEFORE
            parameters |= {"before_at": before.created_at, "before_id": before.id}
        rows = await db.execute(statement, parameters)
        return [ConversationRow(*row) for row in rows]

    async def add_message(
        self,
        db: AsyncSession,
        user_id: str,
        session_id: str,
        *,
        role: Role,
        content: str,
        status: MessageStatus = MessageStatus.COMPLETE,
        model: str | None = None,
    ) -> Message:
        self._check_length(content)
        session = await self.get_session(db, user_id, session_id, for_update=True)
        message = Message(
            session_id=session.id,
            user_id=user_id,
            role=role.value,
            content=content,
            status=status.value,
            model=model,
        )
        db.add(message)
        now = utcnow()
        message.created_at = message.updated_at = now
        session.updated_at = now
        if session.title is None and role is Role.USER:
            session.title = title_from_message(content)
        await db.flush()
        return message

    async def add_exchange(
        self,
        db: AsyncSession,
        user_id: str,
        session_id: str,
        *,
        prompt: str,
        reply_model: str,
        reply_sources: list[dict[str, Any]] | None = None,
    ) -> tuple[Message, Message]:
        """The user's prompt and an empty assistant reply (status ``streaming``) in two
        statements: one UPDATE that checks ownership, bumps and titles the session, and one
        INSERT of both rows. It runs under the write lock on every generation, so it is lean.
        The messages returned are not in the session (nothing to flush)."""
        self._check_length(prompt)
        now = utcnow()
        bumped = await db.execute(
            _BUMP_AND_TITLE,
            {
                "b_session": session_id,
                "b_owner": user_id,
                "b_now": now,
                "b_title": title_from_message(prompt),
            },
        )
        if bumped.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound(SESSION_NOT_FOUND)
        # A microsecond later: history is ordered by created_at, and the reply comes second.
        later = now + timedelta(microseconds=1)
        rows = [
            _message_row(
                session_id, user_id, Role.USER, prompt, MessageStatus.COMPLETE, None, None, now
            ),
            _message_row(
                session_id,
                user_id,
                Role.ASSISTANT,
                "",
                MessageStatus.STREAMING,
                reply_model,
                reply_sources,
                later,
            ),
        ]
        # Core, one INSERT for both rows: the ORM's unit of work cost more than the statements.
        await db.execute(_INSERT_MESSAGES, rows)
        prompt_message, reply = (Message(**row) for row in rows)
        return prompt_message, reply

    async def delete_message(self, db: AsyncSession, user_id: str, message_id: str) -> None:
        deleted = await self.delete_messages(
            db, and_(Message.id == message_id, Message.user_id == user_id), REPLY_DELETED
        )
        if deleted != 1:
            raise NotFound(MESSAGE_NOT_FOUND)

    async def clear_messages(self, db: AsyncSession, user_id: str, session_id: str) -> int:
        session = await self.get_session(db, user_id, session_id, for_update=True)
        deleted = await self.delete_messages(db, Message.session_id == session.id, MESSAGES_CLEARED)
        await db.execute(
            update(ChatSession).where(ChatSession.id == session.id).values(updated_at=utcnow())
        )
        return deleted

    async def delete_messages(
        self, db: AsyncSession, where: ColumnElement[bool], reason: str
    ) -> int:
        """Deletes the messages ``where`` selects (the caller scopes it to one owner) and
        returns how many. Replies among them still being generated are stopped once the
        transaction commits, their followers told ``reason``. Every delete of messages goes
        through here."""
        streaming = Message.status == MessageStatus.STREAMING.value
        running = list(
            await db.scalars(
                delete(Message)
                .where(where, streaming)
                .returning(Message.id)
                .execution_options(synchronize_session=False)
            )
        )
        rest = await db.execute(
            delete(Message).where(where).execution_options(synchronize_session=False)
        )
        if running:
            after_commit(db, partial(self._replies.abandon, running, reason))
        return len(running) + int(rest.rowcount)  # type: ignore[attr-defined]

    def _check_length(self, content: str) -> None:
        if len(content) > self._limits.max_message_chars:
            raise InvalidInput(
                f"Message content exceeds {self._limits.max_message_chars} characters"
            )

    def _clean_title(self, title: str | None) -> str | None:
        if title is None:
            return None
        title = " ".join(title.split())
        if len(title) > self._limits.max_title_chars:
            raise InvalidInput(f"Title exceeds {self._limits.max_title_chars} characters")
        return title or None
