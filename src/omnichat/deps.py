"""Request dependencies, as ``Annotated`` aliases routers use directly.

Every dependency is ``async def``, even the trivial ones: FastAPI runs a plain ``def``
dependency in a worker thread, a thread hop per request per dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.accounts.service import AccountService
from omnichat.addresses import client_key
from omnichat.apikeys.service import ApiKeyService, is_api_key
from omnichat.auth.models import User
from omnichat.auth.service import AuthService
from omnichat.chats.service import ChatService
from omnichat.container import Container
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.service import DocumentService
from omnichat.errors import Forbidden, Unauthorized
from omnichat.generation.service import GenerationService
from omnichat.rag.embedding_service import EmbeddingService
from omnichat.settings import Settings


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_settings(container: ContainerDep) -> Settings:
    return container.settings


async def get_auth_service(container: ContainerDep) -> AuthService:
    return container.auth


async def get_chat_service(container: ContainerDep) -> ChatService:
    return container.chats


async def get_generation_service(container: ContainerDep) -> GenerationService:
    return container.generation


async def get_api_key_service(container: ContainerDep) -> ApiKeyService:
    return container.api_keys


async def get_document_service(container: ContainerDep) -> DocumentService:
    return container.documents


async def get_account_service(container: ContainerDep) -> AccountService:
    return container.accounts


async def get_embedding_service(container: ContainerDep) -> EmbeddingService:
    return container.embeddings


SettingsDep = Annotated[Settings, Depends(get_settings)]
ApiKeyServiceDep = Annotated[ApiKeyService, Depends(get_api_key_service)]
GenerationDep = Annotated[GenerationService, Depends(get_generation_service)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]
DocumentsDep = Annotated[DocumentService, Depends(get_document_service)]
AccountsDep = Annotated[AccountService, Depends(get_account_service)]
EmbeddingsDep = Annotated[EmbeddingService, Depends(get_embedding_service)]


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


async def get_page(
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, description="Page size")] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Page:
    """``limit``/``offset`` query parameters, capped by ``OMNICHAT_MAX_PAGE_SIZE``."""
    return Page(min(limit or settings.max_page_size, settings.max_page_size), offset)


PageDep = Annotated[Page, Depends(get_page)]


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


@dataclass(frozen=True)
class Caller:
    """Who is calling: the user, and the login (token family) of the access token, or None when
    a personal API key authenticated the request."""

    user: User
    family_id: str | None


# Where ``AuthenticateFirstRoute`` leaves the caller it authenticated before reading the body.
CALLER_SCOPE_KEY = "omnichat.caller"


async def get_caller(request: Request, token: BearerToken, container: ContainerDep) -> Caller:
    caller = request.scope.get(CALLER_SCOPE_KEY)
    if isinstance(caller, Caller):
        return caller
    return await authenticate(token, container)


async def authenticate(token: str | None, container: Container) -> Caller:
    """The caller, from an access token or a personal API key. A short read of its own: write
    requests then take the SQLite write lock only for their own work."""
    if not token:
        raise Unauthorized("Not authenticated")
    if is_api_key(token):
        async with container.database.reader() as session:
            user, record = await container.api_keys.user_for_key(session, token)
        if container.api_keys.needs_touch(record):
            async with unit_of_work(container.database.writer) as session:
                await container.api_keys.touch(session, record.id)
        return Caller(user, None)
    claims = container.auth.decode_access_token(token)
    async with container.database.reader() as session:
        return Caller(await container.auth.user_for_claims(session, claims), claims.family_id)


CurrentCaller = Annotated[Caller, Depends(get_caller)]


async def get_current_user(caller: CurrentCaller) -> User:
    return caller.user


CurrentUser = Annotated[User, Depends(get_current_user)]

API_KEY_MANAGES_NO_KEYS = (
    "An API key cannot create, list or delete API keys; use an access token from a password login"
)


async def get_login_user(caller: CurrentCaller) -> User:
    """The user of an access token (a password login); 403 for a personal API key, which must
    not mint, enumerate or revoke credentials beside itself."""
    if caller.family_id is None:
        raise Forbidden(API_KEY_MANAGES_NO_KEYS)
    return caller.user


LoginUser = Annotated[User, Depends(get_login_user)]


async def get_client_address(request: Request) -> str:
    """The client, for per-address limits (``addresses.client_key``: an IPv6 address counts
    by its /64): the peer, or behind a trusted proxy the address it forwards (``omnichat
    serve`` runs uvicorn with ``proxy_headers``, which trusts ``X-Forwarded-For`` from
    ``FORWARDED_ALLOW_IPS``, 127.0.0.1 by default)."""
    return client_key(request.client.host) if request.client else "unknown"


ClientAddress = Annotated[str, Depends(get_client_address)]
