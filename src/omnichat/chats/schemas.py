"""Request and response bodies of the session and message endpoints, for every dialect."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from omnichat.chats.models import ChatSession, Message, Role
from omnichat.schemas import RequestModel, UTCTimestamp

DEFAULT_TITLE = "New Chat"
# Wire-level bounds; the configurable limits (title, message length) are checked by the service.
TitleField = Annotated[str, Field(max_length=10_000)]
ContentField = Annotated[str, Field(max_length=10_000_000)]
IdField = Annotated[str, Field(min_length=1, max_length=64)]


class SessionCreateRequest(RequestModel):
    title: TitleField | None = None


class SessionUpdateRequest(RequestModel):
    title: TitleField


class ExpressMessageCreateRequest(RequestModel):
    """Seed 000's ``{message, role, session}``; ``content`` is accepted for ``message``."""

    message: ContentField | None = None
    content: ContentField | None = None
    role: Role
    session: IdField

    @model_validator(mode="after")
    def _needs_text(self) -> ExpressMessageCreateRequest:
        if self.message is None and self.content is None:
            raise ValueError("message is required")
        return self

    @property
    def text(self) -> str:
        return self.message if self.message is not None else self.content or ""


def display_title(session: ChatSession) -> str:
    return session.title or DEFAULT_TITLE


# -- seeds 001 and 003 (shared /sessions) ---------------------------------------------------------


class MessageOut(BaseModel):
    id: str
    session_id: str
    role: str
    content: str
    status: str
    model: str | None
    # Generated replies: why it ended (OpenAI's values, or stopped/error) and, for an error,
    # what went wrong in words for the user (e.g. "The provider declined: safety").
    finish_reason: str | None = None
    error: str | None = None
    # Answers grounded in the user's documents: what they cite, as [1], [2]...
    sources: list[dict[str, Any]] | None = None
    created_at: UTCTimestamp

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        return cls(
            id=message.id,
            session_id=message.session_id,
            role=message.role,
            content=message.content,
            status=message.status,
            model=message.model,
            finish_reason=message.finish_reason,
            error=message.error,
            sources=message.sources,
            created_at=message.created_at,
        )


class SessionOut(BaseModel):
    id: str
    title: str
    user_id: str
    created_at: UTCTimestamp
    updated_at: UTCTimestamp

    @classmethod
    def of(cls, session: ChatSession) -> SessionOut:
        return cls(
            id=session.id,
            title=display_title(session),
            user_id=session.user_id,
            created_at=session.created_at,
            updated_at=session.updated_at,
        )


class SessionDetailOut(SessionOut):
    messages: list[MessageOut]

    @classmethod
    def with_messages(cls, session: ChatSession, messages: list[Message]) -> SessionDetailOut:
        return cls(
            **SessionOut.of(session).model_dump(),
            messages=[MessageOut.of(m) for m in messages],
        )


# -- seed 000 -------------------------------------------------------------------------------------


class ExpressSessionOut(BaseModel):
    id: str
    mongo_id: str = Field(serialization_alias="_id")
    title: str
    user: str
    createdAt: UTCTimestamp
    updatedAt: UTCTimestamp

    @classmethod
    def of(cls, session: ChatSession) -> ExpressSessionOut:
        return cls(
            id=session.id,
            mongo_id=session.id,
            title=display_title(session),
            user=session.user_id,
            createdAt=session.created_at,
            updatedAt=session.updated_at,
        )


class ExpressMessageOut(BaseModel):
    id: str
    mongo_id: str = Field(serialization_alias="_id")
    message: str
    content: str
    role: str
    session: str
    user: str
    status: str
    # As on ``MessageOut``.
    finish_reason: str | None = None
    error: str | None = None
    createdAt: UTCTimestamp
    updatedAt: UTCTimestamp

    @classmethod
    def of(cls, message: Message) -> ExpressMessageOut:
        return cls(
            id=message.id,
            mongo_id=message.id,
            message=message.content,
            content=message.content,
            role=message.role,
            session=message.session_id,
            user=message.user_id,
            status=message.status,
            finish_reason=message.finish_reason,
            error=message.error,
            createdAt=message.created_at,
            updatedAt=message.updated_at,
        )


class ExpressDeleted(BaseModel):
    message: str
    id: str


class ExpressCleared(BaseModel):
    message: str
    deletedCount: int
