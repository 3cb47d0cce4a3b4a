"""Liveness and readiness."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from omnichat.deps import ContainerDep
from omnichat.errors import UNAVAILABLE_RETRY_AFTER_S, ErrorOut, error_response
from omnichat.ops.backends import container_checks, run_checks, settings_secrets

router = APIRouter(tags=["ops"])
logger = logging.getLogger("omnichat.ops")


class HealthOut(BaseModel):
    status: str


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is up and serving requests."""
    return HealthOut(status="ok")


class BackendOut(BaseModel):
    name: str
    target: str
    ok: bool
    reason: str | None


class ReadyOut(HealthOut):
    backends: list[BackendOut]


class NotReadyOut(ErrorOut):
    backends: list[BackendOut]


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={
        503: {
            "model": NotReadyOut,
            "description": "A backend does not answer: each one's name, target and reason",
            "headers": {"Retry-After": {"schema": {"type": "string"}}},
        }
    },
)
async def readyz(container: ContainerDep) -> ReadyOut | JSONResponse:
    """Every configured backend answers (the database, Redis, the blob store, an external vector
    store; model providers are not part of readiness). 503 names each one that does not, with
    its target (secrets masked) and the reason."""
    statuses = await run_checks(
        container_checks(container), secrets=settings_secrets(container.settings)
    )
    backends = [status.as_json() for status in statuses]
    failing = [status for status in statuses if not status.ok]
    if not failing:
        return ReadyOut(status="ready", backends=[BackendOut(**b) for b in backends])
    for status in failing:
        logger.warning(
            "readiness check failed", extra={"backend": status.name, "reason": status.reason}
        )
    detail = "Not ready: " + "; ".join(f"{s.name} ({s.reason})" for s in failing)
    return error_response(
        503, detail, {"Retry-After": UNAVAILABLE_RETRY_AFTER_S}, backends=backends
    )
