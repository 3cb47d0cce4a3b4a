"""Shared schema building blocks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer


def isoformat_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UTCTimestamp = Annotated[datetime, PlainSerializer(isoformat_utc, return_type=str)]


class RequestModel(BaseModel):
    """Request bodies: unknown keys are ignored, strings are stripped of surrounding whitespace
    only where a field says so."""

    model_config = ConfigDict(extra="ignore")
