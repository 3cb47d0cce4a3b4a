"""Bodies of the generate endpoints of each dialect."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from omnichat.schemas import RequestModel

PromptField = Annotated[str, Field(min_length=1, max_length=10_000_000)]
ModelField = Annotated[str, Field(max_length=200)]
IdField = Annotated[str, Field(min_length=1, max_length=64)]


class ChatStreamRequest(RequestModel):
    """Seed 001. Without ``session_id`` a new session is created (its id is in the first event)."""

    session_id: IdField | None = None
    prompt: PromptField
    provider: ModelField | None = None
    model: ModelField | None = None
    # Ground the answer in the caller's documents; the sources ride on the closing event.
    rag: bool = False


class InferenceQueryRequest(RequestModel):
    """Seed 003. With ``session_id`` both messages are stored in that session."""

    query: PromptField
    model: ModelField | None = None
    enable_rag: bool = False
    session_id: IdField | None = None


class InferenceQueryResponse(BaseModel):
    response: str
    model: str
    session_id: str | None = None
    message_id: str | None = None
    # With enable_rag: the passages the answer was grounded in, numbered as cited ([1] first).
    sources: list[dict[str, object]] = Field(default_factory=list)


class CohereGenerateRequest(RequestModel):
    """Seed 000. Nothing is stored: the client stores both sides with ``POST /api/chats``."""

    prompt: PromptField
    session: IdField | None = None
    model: ModelField | None = None


class CohereGenerateResponse(BaseModel):
    text: str
    model: str


class StopResponse(BaseModel):
    message_id: str
    status: str


class ModelOut(BaseModel):
    id: str
    provider: str
    model: str
    default: bool


class ModelsResponse(BaseModel):
    models: list[ModelOut]
    default: str
    offline: bool
