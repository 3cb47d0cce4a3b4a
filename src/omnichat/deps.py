"""Request dependencies, as ``Annotated`` aliases routers use directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from omnichat.auth.models import User
from omnichat.auth.service import AuthService
from omnichat.auth.tokens import AccessClaims
from omnichat.chats.service import ChatService
from omnichat.container import Container
from omnichat.errors import AppError, Unauthorized
from omnichat.settings import Settings


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def get_settings(container: ContainerDep) -> Settings:
    return container.settings


def get_auth_service(container: ContainerDep) -> AuthService:
    return container.auth


def get_chat_service(container: ContainerDep) -> ChatService:
    return container.chats


SettingsDep = Annotated[Settings, Depends(get_settings)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]


class Page:
    """``limit``/``offset`` query parameters, capped by ``OMNICHAT_MAX_PAGE_SIZE``."""

    def __init__(
        self,
        settings: SettingsDep,
        limit: Annotated[int | None, Query(ge=1, description="Page size")] = None,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> None:
        self.limit = min(limit or settings.max_page_size, settings.max_page_size)
        self.offset = offset


PageDep = Annotated[Page, Depends()]


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """The one place request transactions end: commit on success, roll back on error (unless the
    error says its changes must stand, e.g. a token family revoked on reuse)."""
    async with factory() as session:
        try:
            yield session
        except AppError as exc:
            if exc.keep_changes:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


async def _read_session(container: ContainerDep) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(container.database.reader) as session:
        yield session


async def _write_session(container: ContainerDep) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(container.database.writer) as session:
        yield session


# scope="function": the transaction ends when the endpoint returns, before the response is sent,
# so a client never sees a success whose commit then failed.
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
WriteSession = Annotated[AsyncSession, Depends(_write_session, scope="function")]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)
BearerToken = Annotated[str | None, Depends(oauth2_scheme)]


def get_optional_claims(token: BearerToken, auth: AuthServiceDep) -> AccessClaims | None:
    return auth.decode_access_token(token) if token else None


OptionalClaims = Annotated[AccessClaims | None, Depends(get_optional_claims)]


def get_claims(claims: OptionalClaims) -> AccessClaims:
    if claims is None:
        raise Unauthorized("Not authenticated")
    return claims


Claims = Annotated[AccessClaims, Depends(get_claims)]


async def get_current_user(claims: Claims, container: ContainerDep) -> User:
    # A short read of its own: write requests then take the SQLite write lock only for their work.
    async with container.database.reader() as session:
        return await container.auth.user_for_claims(session, claims)


CurrentUser = Annotated[User, Depends(get_current_user)]
