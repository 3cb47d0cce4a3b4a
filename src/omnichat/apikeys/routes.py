"""``/api-keys``: create (the key is in this one response only), list, revoke. Each needs an
access token (a password login): an API key cannot mint, enumerate or revoke keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StringConstraints

from omnichat.apikeys.models import ApiKey
from omnichat.apikeys.service import MAX_EXPIRY_DAYS
from omnichat.authenticate_first import AuthenticateFirstRoute
from omnichat.deps import ApiKeyServiceDep, LoginUser, ReadSession, WriteSession
from omnichat.errors import error_responses
from omnichat.schemas import RequestModel, UTCTimestamp

router = APIRouter(prefix="/api-keys", tags=["API keys"], route_class=AuthenticateFirstRoute)


class ApiKeyCreateRequest(RequestModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = (
        "default"
    )
    expires_in_days: Annotated[int, Field(strict=True, ge=1, le=MAX_EXPIRY_DAYS)] | None = Field(
        None, description="Days until the key stops working; omitted or null: until revoked"
    )


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: UTCTimestamp
    last_used_at: UTCTimestamp | None
    expires_at: UTCTimestamp | None = Field(description="null: valid until revoked")

    @classmethod
    def of(cls, record: ApiKey) -> ApiKeyOut:
        return cls(
            id=record.id,
            name=record.name,
            prefix=record.prefix,
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            expires_at=record.expires_at,
        )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself: shown only in this response")


# 400: the per-user limit on keys; 403: called with an API key.
@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=error_responses(400, 401, 403, 413, 422),
)
async def create_api_key(
    user: LoginUser,
    db: WriteSession,
    keys: ApiKeyServiceDep,
    body: ApiKeyCreateRequest | None = None,
) -> ApiKeyCreated:
    body = body or ApiKeyCreateRequest()
    created = await keys.create(db, user.id, body.name, expires_in_days=body.expires_in_days)
    return ApiKeyCreated(**ApiKeyOut.of(created.record).model_dump(), key=created.key)


@router.get("", response_model=list[ApiKeyOut], responses=error_responses(401, 403))
async def list_api_keys(
    user: LoginUser, db: ReadSession, keys: ApiKeyServiceDep
) -> list[ApiKeyOut]:
    return [ApiKeyOut.of(k) for k in await keys.list(db, user.id)]


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
async def revoke_api_key(
    key_id: str, user: LoginUser, db: WriteSession, keys: ApiKeyServiceDep
) -> Response:
    await keys.revoke(db, user.id, key_id)
    return Response(status_code=204)
