"""Access JWTs (HS256 pinned) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from omnichat.db.base import utcnow
from omnichat.errors import Unauthorized
from omnichat.ids import new_id

ALGORITHM = "HS256"
ACCESS_TYPE = "access"
VERIFIED_CACHE_SIZE = 10_000
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "typ", "fam", "ver"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    family_id: str
    token_version: int
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    expires_in: int


class AccessTokenCodec:
    def __init__(self, signing_key: str, lifetime: timedelta) -> None:
        self._key = signing_key
        self._lifetime = lifetime
        # Insertion-ordered: the oldest entry goes first when full. Only verified tokens enter.
        self._verified: dict[str, AccessClaims] = {}

    def issue(self, user_id: str, family_id: str, token_version: int) -> IssuedAccessToken:
        now = utcnow()
        claims = {
            "sub": user_id,
            "fam": family_id,
            "ver": token_version,
            "jti": new_id(),
            "typ": ACCESS_TYPE,
            "iat": now,
            "exp": now + self._lifetime,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return IssuedAccessToken(token=token, expires_in=int(self._lifetime.total_seconds()))

    def decode(self, token: str) -> AccessClaims:
        """Verified claims. A token seen before is answered from a small cache (it still expires
        on time): the same access token comes with every request for 15 minutes, and parsing
        and verifying it each time was ~8% of a request's CPU."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at <= utcnow():
                raise Unauthorized("Token has expired")
            return cached
        claims = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))
        self._verified[token] = claims
        return claims

    def _decode(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("Token has expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized() from exc
        if claims.get("typ") != ACCESS_TYPE:
            raise Unauthorized()
        sub, fam, ver, jti = claims["sub"], claims["fam"], claims["ver"], claims["jti"]
        if not all(isinstance(v, str) for v in (sub, fam, jti)) or not isinstance(ver, int):
            raise Unauthorized()
        if isinstance(claims["exp"], bool) or not isinstance(claims["exp"], int | float):
            raise Unauthorized()  # PyJWT lets a numeric string through
        return AccessClaims(
            user_id=sub,
            family_id=fam,
            token_version=ver,
            jti=jti,
            expires_at=datetime.fromtimestamp(claims["exp"], tz=utcnow().tzinfo),
        )


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # Refresh tokens carry 256 random bits, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()
