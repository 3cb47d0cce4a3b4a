"""Session and message endpoints, thin over ``ChatService``.

- ``express_router``: seed 000 (``/api/sessions``, ``/api/chats``).
- ``sessions_router``: seeds 001 and 003 share ``/sessions``; one superset response serves both,
  with and without the trailing slash (no redirects).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from omnichat.authenticate_first import AuthenticateFirstRoute
from omnichat.chats.schemas import (
    ExpressCleared,
    ExpressDeleted,
    ExpressMessageCreateRequest,
    ExpressMessageOut,
    ExpressSessionOut,
    MessageOut,
    SessionCreateRequest,
    SessionDetailOut,
    SessionOut,
    SessionUpdateRequest,
)
from omnichat.deps import ChatServiceDep, CurrentUser, PageDep, ReadSession, WriteSession
from omnichat.errors import error_responses

# What each kind of route answers besides its success.
CREATE_ERRORS = error_responses(401, 413, 422)  # a body, no id
LIST_ERRORS = error_responses(401, 422)  # limit/offset
OWNED_ERRORS = error_responses(401, 404, 422)  # an id in the path
OWNED_BODY_ERRORS = error_responses(401, 404, 413, 422)  # an id and a body

# -- seed 000 -------------------------------------------------------------------------------------

express_router = APIRouter(
    prefix="/api", tags=["chat history (seed 000)"], route_class=AuthenticateFirstRoute
)


@express_router.post(
    "/sessions", status_code=201, response_model=ExpressSessionOut, responses=CREATE_ERRORS
)
async def express_create_session(
    user: CurrentUser,
    db: WriteSession,
    chats: ChatServiceDep,
    body: SessionCreateRequest | None = None,
) -> ExpressSessionOut:
    session = await chats.create_session(db, user.id, body.title if body else None)
    return ExpressSessionOut.of(session)


@express_router.get("/sessions", response_model=list[ExpressSessionOut], responses=LIST_ERRORS)
async def express_list_sessions(
    user: CurrentUser, db: ReadSession, chats: ChatServiceDep, page: PageDep
) -> list[ExpressSessionOut]:
    sessions = await chats.list_sessions(db, user.id, limit=page.limit, offset=page.offset)
    return [ExpressSessionOut.of(s) for s in sessions]


@express_router.get(
    "/sessions/{session_id}", response_model=ExpressSessionOut, responses=OWNED_ERRORS
)
async def express_get_session(
    session_id: str, user: CurrentUser, db: ReadSession, chats: ChatServiceDep
) -> ExpressSessionOut:
    return ExpressSessionOut.of(await chats.get_session(db, user.id, session_id))


@express_router.delete(
    "/sessions/{session_id}", response_model=ExpressDeleted, responses=OWNED_ERRORS
)
async def express_delete_session(
    session_id: str, user: CurrentUser, db: WriteSession, chats: ChatServiceDep
) -> ExpressDeleted:
    await chats.delete_session(db, user.id, session_id)
    return ExpressDeleted(message="Session deleted", id=session_id)


# GET and DELETE /api/chats/{id} are one path (a session id for GET, a message id for DELETE): an
# OpenAPI schema must not hold two templates of the same shape.
@express_router.get("/chats/{id}", response_model=list[ExpressMessageOut], responses=OWNED_ERRORS)
async def express_list_messages(
    session_id: Annotated[str, Path(alias="id", description="The session's id")],
    user: CurrentUser,
    db: ReadSession,
    chats: ChatServiceDep,
    page: PageDep,
) -> list[ExpressMessageOut]:
    messages = await chats.list_messages(
        db, user.id, session_id, limit=page.limit, offset=page.offset
    )
    return [ExpressMessageOut.of(m) for m in messages]


@express_router.post(
    "/chats", status_code=201, response_model=ExpressMessageOut, responses=OWNED_BODY_ERRORS
)
async def express_add_message(
    body: ExpressMessageCreateRequest, user: CurrentUser, db: WriteSession, chats: ChatServiceDep
) -> ExpressMessageOut:
    message = await chats.add_message(db, user.id, body.session, role=body.role, content=body.text)
    return ExpressMessageOut.of(message)


# Declared before /chats/{id} so "session" is never taken for a message id.
@express_router.delete(
    "/chats/session/{session_id}", response_model=ExpressCleared, responses=OWNED_ERRORS
)
async def express_clear_messages(
    session_id: str, user: CurrentUser, db: WriteSession, chats: ChatServiceDep
) -> ExpressCleared:
    count = await chats.clear_messages(db, user.id, session_id)
    return ExpressCleared(message="Messages deleted", deletedCount=count)


@express_router.delete("/chats/{id}", response_model=ExpressDeleted, responses=OWNED_ERRORS)
async def express_delete_message(
    message_id: Annotated[str, Path(alias="id", description="The message's id")],
    user: CurrentUser,
    db: WriteSession,
    chats: ChatServiceDep,
) -> ExpressDeleted:
    await chats.delete_message(db, user.id, message_id)
    return ExpressDeleted(message="Message deleted", id=message_id)


# -- seeds 001 and 003 ----------------------------------------------------------------------------

sessions_router = APIRouter(
    prefix="/sessions", tags=["chat history (seeds 001, 003)"], route_class=AuthenticateFirstRoute
)


@sessions_router.post("", response_model=SessionOut, responses=CREATE_ERRORS)
@sessions_router.post(
    "/", response_model=SessionOut, responses=CREATE_ERRORS, include_in_schema=False
)
async def create_session(
    user: CurrentUser,
    db: WriteSession,
    chats: ChatServiceDep,
    body: SessionCreateRequest | None = None,
) -> SessionOut:
    return SessionOut.of(await chats.create_session(db, user.id, body.title if body else None))


@sessions_router.get("", response_model=list[SessionOut], responses=LIST_ERRORS)
@sessions_router.get(
    "/", response_model=list[SessionOut], responses=LIST_ERRORS, include_in_schema=False
)
async def list_sessions(
    user: CurrentUser, db: ReadSession, chats: ChatServiceDep, page: PageDep
) -> list[SessionOut]:
    sessions = await chats.list_sessions(db, user.id, limit=page.limit, offset=page.offset)
    return [SessionOut.of(s) for s in sessions]


@sessions_router.get("/{session_id}", response_model=SessionDetailOut, responses=OWNED_ERRORS)
async def get_session(
    session_id: str, user: CurrentUser, db: ReadSession, chats: ChatServiceDep
) -> SessionDetailOut:
    session = await chats.get_session(db, user.id, session_id)
    messages = await chats.list_messages(db, user.id, session_id)
    return SessionDetailOut.with_messages(session, messages)


@sessions_router.put("/{session_id}", response_model=SessionOut, responses=OWNED_BODY_ERRORS)
async def rename_session(
    session_id: str,
    body: SessionUpdateRequest,
    user: CurrentUser,
    db: WriteSession,
    chats: ChatServiceDep,
) -> SessionOut:
    return SessionOut.of(await chats.rename_session(db, user.id, session_id, body.title))


@sessions_router.delete(
    "/{session_id}", status_code=204, response_class=Response, responses=OWNED_ERRORS
)
async def delete_session(
    session_id: str, user: CurrentUser, db: WriteSession, chats: ChatServiceDep
) -> Response:
    await chats.delete_session(db, user.id, session_id)
    return Response(status_code=204)


@sessions_router.get(
    "/{session_id}/messages", response_model=list[MessageOut], responses=OWNED_ERRORS
)
async def list_session_messages(
    session_id: str, user: CurrentUser, db: ReadSession, chats: ChatServiceDep, page: PageDep
) -> list[MessageOut]:
    messages = await chats.list_messages(
        db, user.id, session_id, limit=page.limit, offset=page.offset
    )
    return [MessageOut.of(m) for m in messages]
