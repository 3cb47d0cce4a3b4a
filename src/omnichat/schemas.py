"""Shared schema building blocks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, PlainSerializer, model_validator


def isoformat_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UTCTimestamp = Annotated[datetime, PlainSerializer(isoformat_utc, return_type=str)]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


class RequestModel(BaseModel):
    """Request bodies: an unknown key is refused (422 naming it), never silently dropped (a
    misspelt ``new_password`` must not answer 200 with the password unchanged); no string may
    hold a NUL character (PostgreSQL cannot store one, and no legitimate text needs it)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _reject_nul(self) -> Self:
        for name, value in self.__dict__.items():
            if _has_nul(value):
                raise ValueError(f"{name} must not contain NUL characters")
        return self
