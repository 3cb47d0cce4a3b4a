"""Account endpoints of the three dialects, thin over ``AuthService``.

- ``express_router``: seed 000 (``/api/auth/*``), Express-style bodies.
- ``oauth_router``: seed 001 (``/token`` OAuth2 password form, ``/users/``).
- ``auth_router``: seed 003 (``/auth/*`` with refresh rotation and logout).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Form, Response
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.auth.models import EMAIL_MAX_CHARS, User
from omnichat.auth.schemas import (
    AccountDeleteRequest,
    ExpressAuthResponse,
    ExpressDeletedAccount,
    ExpressUserOut,
    LoginRequest,
    LogoutRequest,
    MessageResponse,
    PasswordField,
    ProfileUpdated,
    ProfileUpdateRequest,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserOut,
)
from omnichat.auth.service import AccountChanges, AuthService, TokenPair
from omnichat.authenticate_first import AuthenticateFirstRoute
from omnichat.deps import (
    AccountsDep,
    AuthServiceDep,
    BearerToken,
    ClientAddress,
    CurrentCaller,
    CurrentUser,
    ReadSession,
    WriteSession,
)
from omnichat.errors import Unauthorized, error_responses

BAD_EMAIL_LOGIN = "Incorrect email or password"
BAD_USERNAME_LOGIN = "Incorrect username or password"  # seed 001's documented body
# 400: email taken; 422: invalid input or a weak password; 429: too many registrations from
# the client's address.
REGISTER_ERRORS = error_responses(400, 413, 422, 429)
# 429: too many failed logins for the email, or too many attempts from the client's address.
LOGIN_ERRORS = error_responses(401, 413, 422, 429)
# The form login: 400 for a malformed form body too.
TOKEN_ERRORS = error_responses(400, 401, 413, 422, 429)
# 400: a password or email change without the right current password, or an email taken;
# 429: too many wrong passwords for the account (they count as failed logins).
PROFILE_ERRORS = error_responses(400, 401, 413, 422, 429)
# 400: without the right current password; 429 as above.
# 503: the originals' store does not answer (nothing is deleted).
DELETE_ACCOUNT_ERRORS = error_responses(400, 401, 413, 422, 429, 503)


async def _register(
    db: AsyncSession, auth: AuthService, body: RegisterRequest, client_address: str
) -> User:
    return await auth.register(
        db,
        email=body.email,
        password=body.password,
        client_address=client_address,
        username=body.username,
        first_name=body.first_name,
        last_name=body.last_name,
    )


async def _login(
    read_db: AsyncSession,
    write_db: AsyncSession,
    auth: AuthService,
    email: str,
    password: str,
    failure: str,
    client_address: str,
) -> tuple[User, TokenPair]:
    # Verify on a read transaction: the ~50 ms of argon2 must not hold SQLite's write lock.
    user = await auth.authenticate(read_db, email, password, client_address=client_address)
    if user is None:
        raise Unauthorized(failure)
    await auth.upgrade_hash_if_needed(write_db, user, password)
    return user, await auth.start_login(write_db, user)


def _token_response(tokens: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


def _express_auth_response(user: User, tokens: TokenPair) -> ExpressAuthResponse:
    return ExpressAuthResponse(
        token=tokens.access_token,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
        user=ExpressUserOut.of(user),
    )


# -- seed 000 -------------------------------------------------------------------------------------

express_router = APIRouter(
    prefix="/api/auth", tags=["accounts (seed 000)"], route_class=AuthenticateFirstRoute
)


@express_router.post(
    "/register",
    status_code=201,
    response_model=ExpressAuthResponse,
    responses=REGISTER_ERRORS,
)
async def express_register(
    body: RegisterRequest, db: WriteSession, auth: AuthServiceDep, client_address: ClientAddress
) -> ExpressAuthResponse:
    user = await _register(db, auth, body, client_address)
    return _express_auth_response(user, await auth.start_login(db, user))


@express_router.post("/login", response_model=ExpressAuthResponse, responses=LOGIN_ERRORS)
async def express_login(
    body: LoginRequest,
    read_db: ReadSession,
    write_db: WriteSession,
    auth: AuthServiceDep,
    client_address: ClientAddress,
) -> ExpressAuthResponse:
    user, tokens = await _login(
        read_db, write_db, auth, body.email, body.password, BAD_EMAIL_LOGIN, client_address
    )
    return _express_auth_response(user, tokens)


@express_router.get("/me", response_model=ExpressUserOut, responses=error_responses(401))
async def express_me(user: CurrentUser) -> ExpressUserOut:
    return ExpressUserOut.of(user)


@express_router.delete("/me", response_model=ExpressDeletedAccount, responses=DELETE_ACCOUNT_ERRORS)
async def express_delete_me(
    body: AccountDeleteRequest, user: CurrentUser, db: WriteSession, accounts: AccountsDep
) -> ExpressDeletedAccount:
    """Deletes the account and everything it owns (see ``DELETE /auth/me``)."""
    await accounts.delete_account(db, user, body.current_password)
    return ExpressDeletedAccount(message="Account deleted", id=user.id)


# -- seed 001 -------------------------------------------------------------------------------------

oauth_router = APIRouter(tags=["accounts (seed 001)"], route_class=AuthenticateFirstRoute)


@oauth_router.post("/token", response_model=TokenResponse, responses=TOKEN_ERRORS)
async def oauth_token(
    # Not validated as an email: a malformed one is just a wrong username (401, as documented).
    username: Annotated[str, Form(max_length=EMAIL_MAX_CHARS, description="The user's email")],
    password: Annotated[PasswordField, Form()],
    read_db: ReadSession,
    write_db: WriteSession,
    auth: AuthServiceDep,
    client_address: ClientAddress,
) -> TokenResponse:
    if "\x00" in username:
        raise Unauthorized(BAD_USERNAME_LOGIN)
    _, tokens = await _login(
        read_db, write_db, auth, username, password, BAD_USERNAME_LOGIN, client_address
    )
    return _token_response(tokens)


@oauth_router.post("/users/", response_model=UserOut, responses=REGISTER_ERRORS)
@oauth_router.post(
    "/users", response_model=UserOut, responses=REGISTER_ERRORS, include_in_schema=False
)
async def oauth_create_user(
    body: RegisterRequest, db: WriteSession, auth: AuthServiceDep, client_address: ClientAddress
) -> UserOut:
    return UserOut.of(await _register(db, auth, body, client_address))


@oauth_router.get("/users/me/", response_model=UserOut, responses=error_responses(401))
@oauth_router.get(
    "/users/me", response_model=UserOut, responses=error_responses(401), include_in_schema=False
)
async def oauth_me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)


@oauth_router.put("/users/me/", response_model=ProfileUpdated, responses=PROFILE_ERRORS)
@oauth_router.put(
    "/users/me", response_model=ProfileUpdated, responses=PROFILE_ERRORS, include_in_schema=False
)
async def oauth_update_me(
    body: ProfileUpdateRequest, caller: CurrentCaller, db: WriteSession, auth: AuthServiceDep
) -> ProfileUpdated:
    """Profile fields. ``email`` (with ``current_password``) changes the address (unique,
    case-insensitive) and ends every other login; ``password`` (with ``current_password``)
    changes the password, ends every login, this one included, and revokes every API key
    (``api_keys_revoked`` says how many). All or nothing."""
    changes = AccountChanges(
        username=body.username,
        first_name=body.first_name,
        last_name=body.last_name,
        email=body.email,
        password=body.password,
    )
    updated = await auth.update_account(
        db, caller.user, changes, body.current_password, keep_family_id=caller.family_id
    )
    return ProfileUpdated.of(updated.user, api_keys_revoked=updated.api_keys_revoked)


@oauth_router.delete(
    "/users/me/", status_code=204, response_class=Response, responses=DELETE_ACCOUNT_ERRORS
)
@oauth_router.delete(
    "/users/me",
    status_code=204,
    response_class=Response,
    responses=DELETE_ACCOUNT_ERRORS,
    include_in_schema=False,
)
async def oauth_delete_me(
    body: AccountDeleteRequest, user: CurrentUser, db: WriteSession, accounts: AccountsDep
) -> Response:
    """Deletes the account and everything it owns (see ``DELETE /auth/me``)."""
    await accounts.delete_account(db, user, body.current_password)
    return Response(status_code=204)


# -- seed 003 -------------------------------------------------------------------------------------

auth_router = APIRouter(
    prefix="/auth", tags=["accounts (seed 003)"], route_class=AuthenticateFirstRoute
)


@auth_router.post("/register", response_model=UserOut, responses=REGISTER_ERRORS)
async def auth_register(
    body: RegisterRequest, db: WriteSession, auth: AuthServiceDep, client_address: ClientAddress
) -> UserOut:
    return UserOut.of(await _register(db, auth, body, client_address))


@auth_router.post("/login", response_model=TokenResponse, responses=LOGIN_ERRORS)
async def auth_login(
    body: LoginRequest,
    read_db: ReadSession,
    write_db: WriteSession,
    auth: AuthServiceDep,
    client_address: ClientAddress,
) -> TokenResponse:
    _, tokens = await _login(
        read_db, write_db, auth, body.email, body.password, BAD_EMAIL_LOGIN, client_address
    )
    return _token_response(tokens)


@auth_router.get("/me", response_model=UserOut, responses=error_responses(401))
async def auth_me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)


@auth_router.delete(
    "/me", status_code=204, response_class=Response, responses=DELETE_ACCOUNT_ERRORS
)
async def auth_delete_me(
    body: AccountDeleteRequest, user: CurrentUser, db: WriteSession, accounts: AccountsDep
) -> Response:
    """Deletes the account with its sessions, messages, documents (chunks, vectors, originals),
    API keys and logins, in one transaction; replies still being generated stop at once.
    Needs ``{"current_password": ...}``."""
    await accounts.delete_account(db, user, body.current_password)
    return Response(status_code=204)


@auth_router.post(
    "/refresh", response_model=TokenResponse, responses=error_responses(401, 413, 422)
)
async def auth_refresh(
    body: RefreshRequest, db: WriteSession, auth: AuthServiceDep
) -> TokenResponse:
    return _token_response(await auth.refresh(db, body.refresh_token))


@auth_router.post(
    "/logout", response_model=MessageResponse, responses=error_responses(401, 413, 422)
)
async def auth_logout(
    db: WriteSession,
    auth: AuthServiceDep,
    bearer: BearerToken,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> MessageResponse:
    """Revokes the refresh token in the body (its whole login), or with only a bearer token the
    caller's current login. Access tokens of that login stop working at once."""
    refresh_token = body.refresh_token if body else None
    claims = None
    if bearer:
        try:
            claims = auth.decode_access_token(bearer)
        except Unauthorized:
            # An expired access token must not stop a client from revoking its refresh token.
            if not refresh_token:
                raise
    await auth.logout(db, refresh_token=refresh_token, claims=claims)
    return MessageResponse(message="Logged out")
