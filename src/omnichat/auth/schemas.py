"""Request and response bodies of the account endpoints, for every dialect."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from omnichat.auth.models import EMAIL_MAX_CHARS, NAME_MAX_CHARS, User
from omnichat.schemas import RequestModel, UTCTimestamp

# Generous bound on the wire; the 8-128 policy is checked with a clear message by the service.
PasswordField = Annotated[str, Field(min_length=1, max_length=4096)]
NameField = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_CHARS)
]
EmailField = Annotated[EmailStr, Field(max_length=EMAIL_MAX_CHARS)]
TokenField = Annotated[str, Field(min_length=1, max_length=512)]


class RegisterRequest(RequestModel):
    """One body for every dialect's registration: seed 000 and 001 send a username, seed 003
    first and last names."""

    email: EmailField
    password: PasswordField
    username: NameField | None = None
    first_name: NameField | None = None
    last_name: NameField | None = None


class LoginRequest(RequestModel):
    email: EmailField
    password: PasswordField


class ProfileUpdateRequest(RequestModel):
    """Profile fields; ``email`` and ``password`` also need ``current_password``."""

    username: NameField | None = None
    first_name: NameField | None = None
    last_name: NameField | None = None
    email: EmailField | None = None
    password: PasswordField | None = None
    current_password: PasswordField | None = None


class AccountDeleteRequest(RequestModel):
    current_password: PasswordField


class RefreshRequest(RequestModel):
    refresh_token: TokenField


class LogoutRequest(RequestModel):
    refresh_token: TokenField | None = None


class UserOut(BaseModel):
    """Seeds 001 and 003."""

    id: str
    email: str
    username: str | None
    first_name: str | None
    last_name: str | None
    created_at: UTCTimestamp

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            first_name=user.first_name,
            last_name=user.last_name,
            created_at=user.created_at,
        )


class ProfileUpdated(UserOut):
    """``PUT /users/me/``: the user, and how many API keys the change revoked (a new password
    revokes them all; otherwise 0)."""

    api_keys_revoked: int = 0

    @classmethod
    def of(cls, user: User, *, api_keys_revoked: int = 0) -> ProfileUpdated:
        return cls(**UserOut.of(user).model_dump(), api_keys_revoked=api_keys_revoked)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    refresh_token: str
    expires_in: int


class ExpressUserOut(BaseModel):
    """Seed 000: Mongoose-style ``_id`` beside ``id``, camelCase timestamps."""

    id: str
    mongo_id: str = Field(serialization_alias="_id")
    email: str
    username: str | None
    first_name: str | None
    last_name: str | None
    createdAt: UTCTimestamp
    updatedAt: UTCTimestamp

    @classmethod
    def of(cls, user: User) -> ExpressUserOut:
        return cls(
            id=user.id,
            mongo_id=user.id,
            email=user.email,
            username=user.username,
            first_name=user.first_name,
            last_name=user.last_name,
            createdAt=user.created_at,
            updatedAt=user.updated_at,
        )


class ExpressAuthResponse(BaseModel):
    token: str
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    user: ExpressUserOut


class MessageResponse(BaseModel):
    message: str


class ExpressDeletedAccount(BaseModel):
    """Seed 000's shape for deletions (as ``DELETE /api/sessions/:id``)."""

    message: str
    id: str
