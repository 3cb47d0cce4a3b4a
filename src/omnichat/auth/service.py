"""Accounts and tokens. Services flush; the request dependency commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

from sqlalchemy import ColumnElement, and_, bindparam, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.apikeys.service import ApiKeyService
from omnichat.auth.models import RefreshToken, TokenFamily, User
from omnichat.auth.passwords import (
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from omnichat.auth.tokens import (
    AccessClaims,
    AccessTokenCodec,
    hash_refresh_token,
    new_refresh_token,
)
from omnichat.db.base import utcnow
from omnichat.errors import BadRequest, Unauthorized
from omnichat.ratelimit import RateWindow, TooManyRequests

EMAIL_TAKEN = "Email already registered"
INVALID_REFRESH = "Invalid or expired refresh token"
REFRESH_REUSED = "Refresh token reuse detected; all sessions of this login were revoked"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class UpdatedAccount:
    """The user as changed, and how many API keys the change revoked (a new password
    revokes them all)."""

    user: User
    api_keys_revoked: int


@dataclass(frozen=True)
class AddressLimits:
    """Attempts per client address (every attempt counts, before any password is hashed)."""

    logins: RateWindow
    registrations: RateWindow


@dataclass(frozen=True)
class AccountChanges:
    """What ``PUT /users/me/`` may change; None leaves a field as it is."""

    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    password: str | None = None


def normalize_email(email: str) -> str:
    return email.strip().lower()


def default_username(email: str) -> str:
    return email.split("@", 1)[0][:100]


# Built once: this runs on every authenticated request, and building the clause costs more
# than SQLite takes to answer it.
_USER_WITH_LIVE_FAMILY = select(User).where(
    User.id == bindparam("user_id"),
    User.token_version == bindparam("token_version"),
    exists().where(
        and_(
            TokenFamily.id == bindparam("family_id"),
            TokenFamily.user_id == User.id,
            TokenFamily.revoked_at.is_(None),
            TokenFamily.expires_at > bindparam("now"),
        )
    ),
)


class AuthService:
    def __init__(
        self,
        codec: AccessTokenCodec,
        refresh_lifetime: timedelta,
        failed_logins: RateWindow | None = None,
        *,
        api_keys: ApiKeyService,
        address_limits: AddressLimits | None = None,
        refresh_reuse_leeway: timedelta = timedelta(0),
    ) -> None:
        self._codec = codec
        self._refresh_lifetime = refresh_lifetime
        # Failed logins per email: a password-guessing brake that never touches a user who
        # types the right password (only failures count).
        self._failed_logins = failed_logins
        self._api_keys = api_keys
        self._address_limits = address_limits
        self._reuse_leeway = refresh_reuse_leeway

    # -- accounts -----------------------------------------------------------------------------

    async def register(
        self,
        db: AsyncSession,
        *,
        email: str,
        password: str,
        client_address: str,
        username: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> User:
        """The new user. 400 if the email is taken, 422 for a weak password, 429 (with
        ``Retry-After``) past the registrations allowed from ``client_address``."""
        if self._address_limits is not None:
            await _hit(self._address_limits.registrations, client_address, "registrations")
        email = normalize_email(email)
        check_password_policy(password, email=email)
        # Hash before the first query: on SQLite a write transaction holds the database lock.
        password_hash = await hash_password(password)
        if await self._find_by_email(db, email) is not None:
            raise BadRequest(EMAIL_TAKEN)
        user = User(
            email=email,
            username=username or default_username(email),
            first_name=first_name,
            last_name=last_name,
            password_hash=password_hash,
        )
        db.add(user)
        try:
            async with db.begin_nested():
                await db.flush()
        except IntegrityError as exc:  # a concurrent registration won the race
            raise BadRequest(EMAIL_TAKEN) from exc
        return user

    async def authenticate(
        self, db: AsyncSession, email: str, password: str, *, client_address: str
    ) -> User | None:
        """The user for these credentials, or None; the same work is done for unknown emails.
        429 (with ``Retry-After``) past the attempts allowed from ``client_address``, or after
        too many failures for one email, until the window moves on."""
        if self._address_limits is not None:
            await _hit(self._address_limits.logins, client_address, "login attempts")
        email = normalize_email(email)
        await self._check_failed_logins(email)
        user = await self._find_by_email(db, email)
        if not await verify_password(user.password_hash if user else None, password):
            await self._count_failed_login(email)
            return None
        return user

    async def upgrade_hash_if_needed(self, db: AsyncSession, user: User, password: str) -> None:
        if needs_rehash(user.password_hash):
            await db.execute(
                update(User)
                .where(User.id == user.id)
                .values(password_hash=await hash_password(password))
            )

    async def update_account(
        self,
        db: AsyncSession,
        user: User,
        changes: AccountChanges,
        current_password: str | None,
        *,
        keep_family_id: str | None,
    ) -> UpdatedAccount:
        """Applies ``changes`` all together or not at all. A new ``email`` or ``password``
        needs ``current_password`` (400 without it or when wrong; wrong ones count as failed
        logins). A new email stays unique case-insensitively (400 if taken) and ends every
        other login (``keep_family_id``: the caller's own; None for an API key, then every
        login ends); a new password ends every login and revokes every API key (their number
        is in the result). The argon2 work (checking the current password, hashing the new
        one) is done before ``db`` runs its first statement: on SQLite that transaction holds
        the only write connection."""
        email = normalize_email(changes.email) if changes.email is not None else None
        if email is not None or changes.password is not None:
            what = " and ".join(
                name
                for name, value in (("email", email), ("password", changes.password))
                if value is not None
            )
            await self.verify_current_password(user, current_password, f"change the {what}")
        new_hash = None
        if changes.password is not None:
            check_password_policy(changes.password, email=email or user.email)
            new_hash = await hash_password(changes.password)

        row = await self._get_user(db, user.id)
        for field in ("username", "first_name", "last_name"):
            value = getattr(changes, field)
            if value is not None:
                setattr(row, field, value)
        if email is not None and email != row.email:
            if await self._find_by_email(db, email) is not None:
                raise BadRequest(EMAIL_TAKEN)
            row.email = email
            try:
                async with db.begin_nested():
                    await db.flush()
            except IntegrityError as exc:  # a concurrent registration or change won the race
                raise BadRequest(EMAIL_TAKEN) from exc
            others = TokenFamily.user_id == user.id
            if keep_family_id is not None:
                others = and_(others, TokenFamily.id != keep_family_id)
            await self._revoke_families(db, others, reason="email_change")
        api_keys_revoked = 0
        if new_hash is not None:
            row.password_hash = new_hash
            row.token_version += 1
            await self._revoke_all_families(db, user.id, reason="password_change")
            # A key made with a stolen token must not outlive the password it was stolen under.
            api_keys_revoked = await self._api_keys.revoke_all(db, user.id)
        await db.flush()
        return UpdatedAccount(row, api_keys_revoked)

    async def verify_current_password(
        self, user: User, current_password: str | None, purpose: str
    ) -> None:
        """400 unless ``current_password`` is the user's password (``purpose``: "delete the
        account", for the message)."""
        if current_password is None:
            raise BadRequest(f"current_password is required to {purpose}")
        # The same brake as logins: a stolen token or API key must not turn this into an
        # unthrottled password oracle.
        await self._check_failed_logins(user.email)
        if not await verify_password(user.password_hash, current_password):
            await self._count_failed_login(user.email)
            raise BadRequest("Current password is incorrect")

    async def _check_failed_logins(self, email: str) -> None:
        """429 while ``email`` has had too many failed password checks."""
        if self._failed_logins is not None:
            wait_s = await self._failed_logins.wait_time(email)
            if wait_s is not None:
                raise TooManyRequests.after(wait_s, "Too many failed logins for this account")

    async def _count_failed_login(self, email: str) -> None:
        if self._failed_logins is not None:
            await self._failed_logins.hit(email)

    # -- tokens -------------------------------------------------------------------------------

    async def start_login(self, db: AsyncSession, user: User) -> TokenPair:
        now = utcnow()
        family = TokenFamily(user_id=user.id, expires_at=now + self._refresh_lifetime)
        db.add(family)
        await db.flush()
        return await self._issue_pair(db, family.id, user)

    async def refresh(self, db: AsyncSession, presented: str) -> TokenPair:
        """A new pair of the presented token's login, which rotates the token. A token already
        rotated gets one too within the reuse leeway of its (first) rotation: a retry, a second
        tab, or a concurrent refresh, on any worker (the rotation time is in the database).
        Past the leeway, reuse revokes the login (401, and the revocation is committed).
        401 for an unknown, expired or revoked token."""
        row = (
            await db.execute(
                select(RefreshToken, TokenFamily, User)
                .join(TokenFamily, RefreshToken.family_id == TokenFamily.id)
                .join(User, TokenFamily.user_id == User.id)
                .where(RefreshToken.token_hash == hash_refresh_token(presented))
            )
        ).one_or_none()
        if row is None:
            raise Unauthorized(INVALID_REFRESH)
        token, family, user = row
        now = utcnow()
        if family.revoked_at is not None or family.expires_at <= now:
            raise Unauthorized(INVALID_REFRESH)
        if token.rotated_at is None:
            # Conditional update: of two concurrent refreshes with one token, exactly one
            # rotates it. On PostgreSQL the loser's update waits for the winner's commit.
            claimed = await db.execute(
                update(RefreshToken)
                .where(RefreshToken.id == token.id, RefreshToken.rotated_at.is_(None))
                .values(rotated_at=now)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                return await self._issue_pair(db, family.id, user)
        # Already rotated, maybe by a concurrent request that just committed: read it afresh
        # (a column, not the entity: the identity map holds the stale row).
        rotated_at = await db.scalar(
            select(RefreshToken.rotated_at).where(RefreshToken.id == token.id)
        )
        if rotated_at is None:  # deleted meanwhile (the account went)
            raise Unauthorized(INVALID_REFRESH)
        # The racing winner may have stamped a time after ours: still within.
        if self._reuse_leeway > timedelta(0) and now - rotated_at <= self._reuse_leeway:
            # A fresh token of the same family; the presented one keeps its first rotation
            # time, so reusing it again does not extend the leeway.
            return await self._issue_pair(db, family.id, user)
        await self._revoke_reused_family(db, family.id)

    async def logout(
        self, db: AsyncSession, *, refresh_token: str | None, claims: AccessClaims | None
    ) -> None:
        """Revoke the family of the presented refresh token, else the caller's current family."""
        if refresh_token:
            family = (
                await db.execute(
                    select(TokenFamily)
                    .join(RefreshToken, RefreshToken.family_id == TokenFamily.id)
                    .where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
                )
            ).scalar_one_or_none()
            if family is None or (claims is not None and family.user_id != claims.user_id):
                raise Unauthorized(INVALID_REFRESH)
            await self._revoke_family(db, family.id, reason="logout")
        if claims is not None:
            await self._revoke_family(db, claims.family_id, reason="logout")
        if not refresh_token and claims is None:
            raise Unauthorized("Not authenticated")

    async def user_for_access_token(self, db: AsyncSession, token: str) -> User:
        claims = self._codec.decode(token)
        return await self.user_for_claims(db, claims)

    async def user_for_claims(self, db: AsyncSession, claims: AccessClaims) -> User:
        parameters = {
            "user_id": claims.user_id,
            "token_version": claims.token_version,
            "family_id": claims.family_id,
            "now": utcnow(),
        }
        user = (await db.execute(_USER_WITH_LIVE_FAMILY, parameters)).scalar_one_or_none()
        if user is None:
            raise Unauthorized()
        return user

    def decode_access_token(self, token: str) -> AccessClaims:
        return self._codec.decode(token)

    # -- internals ----------------------------------------------------------------------------

    async def _issue_pair(self, db: AsyncSession, family_id: str, user: User) -> TokenPair:
        refresh_token = new_refresh_token()
        db.add(RefreshToken(family_id=family_id, token_hash=hash_refresh_token(refresh_token)))
        await db.flush()
        access = self._codec.issue(user.id, family_id, user.token_version)
        return TokenPair(
            access_token=access.token, refresh_token=refresh_token, expires_in=access.expires_in
        )

    async def _revoke_reused_family(self, db: AsyncSession, family_id: str) -> NoReturn:
        await self._revoke_family(db, family_id, reason="reuse")
        raise Unauthorized(REFRESH_REUSED, keep_changes=True)

    async def _revoke_family(self, db: AsyncSession, family_id: str, *, reason: str) -> None:
        await self._revoke_families(db, TokenFamily.id == family_id, reason=reason)

    async def _revoke_all_families(self, db: AsyncSession, user_id: str, *, reason: str) -> None:
        await self._revoke_families(db, TokenFamily.user_id == user_id, reason=reason)

    async def _revoke_families(
        self, db: AsyncSession, which: ColumnElement[bool], *, reason: str
    ) -> None:
        await db.execute(
            update(TokenFamily)
            .where(which, TokenFamily.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )

    async def _find_by_email(self, db: AsyncSession, email: str) -> User | None:
        return (await db.execute(select(User).where(User.email == email))).scalar_one_or_none()

    async def _get_user(self, db: AsyncSession, user_id: str) -> User:
        user = await db.get(User, user_id)
        if user is None:
            raise Unauthorized()
        return user


async def _hit(window: RateWindow, client_address: str, what: str) -> None:
    """Counts an attempt from ``client_address``; 429 past the window's allowance."""
    wait_s = await window.hit(client_address)
    if wait_s is not None:
        raise TooManyRequests.after(wait_s, f"Too many {what} from this address")
