"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from pydantic import BaseModel

from omnichat.deps import ContainerDep
from omnichat.errors import ServiceUnavailable, error_responses

router = APIRouter(tags=["ops"])
logger = logging.getLogger("omnichat.ops")
READINESS_TIMEOUT_S = 2.0


class HealthOut(BaseModel):
    status: str


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is up and serving requests."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses=error_responses(503))
async def readyz(container: ContainerDep) -> HealthOut:
    """The database answers."""
    try:
        await asyncio.wait_for(container.database.ping(), READINESS_TIMEOUT_S)
    except Exception as exc:
        logger.warning("readiness check failed: %s", type(exc).__name__)
        raise ServiceUnavailable("Database unavailable") from exc
    return HealthOut(status="ready")
