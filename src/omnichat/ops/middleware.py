"""Pure ASGI middleware (``BaseHTTPMiddleware`` halves streaming throughput): request ids, JSON
access logs, and a bound on request bodies."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnichat.errors import error_response_for

access_logger = logging.getLogger("omnichat.access")
REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# The ``send`` the outermost of our middlewares received, for event-stream bodies (see
# ``generation.sse.EventStreamResponse``).
BODY_SEND = "omnichat.body_send"
SHUTDOWN_RETRY_AFTER_S = 5


class RequestContextMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` if sane, else a new one), echoes it
    in the response, and writes one JSON access-log line when the response ends."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        refusal = _nul_refusal(scope)
        if refusal is not None:
            # PostgreSQL cannot even compare text holding NUL: refuse before any route runs.
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["request_id"] = request_id
        scope[BODY_SEND] = send
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # Only uvicorn cancels a request's task: at the end of its shutdown grace. One that
            # has not answered yet (its body still arriving, say) gets a 503 that says why, not
            # uvicorn's bare 500 text, and its task ends here.
            current = asyncio.current_task()
            if responded or current is None:
                raise
            current.uncancel()
            await error_response_for(
                scope["path"],
                503,
                "The server is shutting down; send the request again",
                {"Retry-After": str(SHUTDOWN_RETRY_AFTER_S), "Connection": "close"},
            )(scope, receive, send_with_id)
        finally:
            if self.access_log:
                access_logger.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "client": scope["client"][0] if scope.get("client") else None,
                    },
                )


def _nul_refusal(scope: Scope) -> JSONResponse | None:
    """No resource has a NUL in its path (404, like any missing one); no parameter may hold one."""
    if "\x00" in scope["path"]:
        return error_response_for(scope["path"], 404, "Not found")
    if b"%00" in scope.get("query_string", b""):
        return error_response_for(
            scope["path"], 422, "NUL characters are not allowed in query parameters"
        )
    return None


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.match(value):
            return str(value.decode())
    return None


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, by Content-Length up front and by counting
    while a chunked body streams in. ``path_limits`` gives some paths (uploads) their own."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope["path"], self.default_max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > max_bytes:
                    await self._refuse(scope, receive, send, max_bytes)
                    return
                break
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._refuse(scope, receive, send, max_bytes)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = error_response_for(scope["path"], 413, f"Request body exceeds {max_bytes} bytes")
        await response(scope, receive, send)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` mid-body. An HTTPException, so that FastAPI's body parsing
    passes it on (it turns other errors into 400) and the app answers 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"Request body exceeds {max_bytes} bytes")


class JsonLogFormatter(logging.Formatter):
    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    JsonLogFormatter.converter = time.gmtime
    root = logging.getLogger("omnichat")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
