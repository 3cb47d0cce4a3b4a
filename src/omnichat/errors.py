"""Typed application errors and the one place they become HTTP responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from omnichat.llm.errors import ProviderError

logger = logging.getLogger("omnichat.errors")


class AppError(Exception):
    status_code = 400
    detail = "Bad request"
    # An error raised after the service changed state that must survive the error (e.g. revoking a
    # refresh-token family on reuse). The request session commits instead of rolling back.
    keep_changes = False

    # Under ``/v1/``: OpenAI's ``error.param`` (the request field at fault) and ``error.code``.
    param: str | None = None
    code: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        param: str | None = None,
        code: str | None = None,
    ):
        self.detail = detail or self.detail
        self.headers = dict(headers or {})
        self.param = param or self.param
        self.code = code or self.code
        super().__init__(self.detail)


class BadRequest(AppError):
    status_code = 400


class UnsupportedField(BadRequest):
    """A request field the chosen provider has no native form for (OpenAI's
    ``unsupported_parameter``): refused by name rather than dropped."""

    code = "unsupported_parameter"

    def __init__(self, param: str, provider: str, why: str = "") -> None:
        super().__init__(
            f"'{param}' is not supported by {provider} models"
            + (f": {why}" if why else "")
            + "; leave it out or choose another model",
            param=param,
        )
        self.provider = provider


class ClientClosedRequest(AppError):
    """The client went away before its answer was ready (nginx's 499): the work was stopped
    and nothing is sent."""

    status_code = 499
    detail = "The client closed the request"


class Unauthorized(AppError):
    status_code = 401
    detail = "Could not validate credentials"

    def __init__(self, detail: str | None = None, *, keep_changes: bool = False) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})
        self.keep_changes = keep_changes


class Forbidden(AppError):
    """Authenticated, but this credential may not do this (e.g. an API key managing keys)."""

    status_code = 403
    detail = "Forbidden"


class NotFound(AppError):
    status_code = 404
    detail = "Not found"


class Conflict(AppError):
    status_code = 409
    detail = "Conflict"


class Gone(AppError):
    status_code = 410
    detail = "Gone"


class UnsupportedMediaType(AppError):
    status_code = 415
    detail = "Unsupported media type"


class InvalidInput(AppError):
    status_code = 422
    detail = "Invalid input"


class ProviderDeclined(AppError):
    """The provider refused the request or blocked its reply (safety, recitation, policy)."""

    status_code = 422
    detail = "The provider declined"


class PayloadTooLarge(AppError):
    status_code = 413
    detail = "Request body too large"


class BadGateway(AppError):
    status_code = 502
    detail = "The upstream provider failed"


# How long a client should wait before retrying a 503 (a dependency that is down).
UNAVAILABLE_RETRY_AFTER_S = "1"


class ServiceUnavailable(AppError):
    status_code = 503
    detail = "Service unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": UNAVAILABLE_RETRY_AFTER_S})


# -- the error bodies, as the OpenAPI schema declares them ----------------------------------------


class ErrorOut(BaseModel):
    """Every error: ``{"detail": "<message>"}``."""

    detail: str


class FieldErrorOut(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(ErrorOut):
    """422: ``errors`` lists the offending fields when the request did not parse or validate."""

    errors: list[FieldErrorOut] = Field(default_factory=list)


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None


class OpenAIErrorOut(ErrorOut):
    """Under ``/v1/`` errors also carry OpenAI's ``error`` object."""

    error: OpenAIErrorBody


class OpenAIValidationErrorOut(ValidationErrorOut):
    error: OpenAIErrorBody


_ERROR_DESCRIPTIONS = {
    400: "Bad request (e.g. an unknown model name, an email already registered)",
    401: "Missing, invalid or expired credentials",
    403: "This credential may not do this (e.g. an API key managing API keys)",
    404: "Not found; another user's object answers exactly like a missing one",
    409: "Conflict (e.g. a quota on the number of objects)",
    410: "Gone: the object exists but what was asked of it can no longer be given",
    413: "Request body, file or storage quota too large",
    415: "Unsupported file type",
    422: "Invalid input",
    429: "Rate limited; retry after ``Retry-After`` seconds",
    502: "The model provider failed",
    503: "Temporarily unavailable",
    504: "The model provider timed out",
}
_STRING_HEADER = {"schema": {"type": "string"}}


def error_responses(*codes: int, openai: bool = False) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status it can answer besides its success, with the
    error body it carries, so that the OpenAPI schema lists every status a client may see."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if openai and code == 422:
            continue  # under /v1/ invalid input is OpenAI's 400
        model: type[BaseModel]
        if openai:
            # A 400 under /v1/ may be a body that did not validate: it lists the fields too.
            model = OpenAIValidationErrorOut if code == 400 else OpenAIErrorOut
        else:
            model = ValidationErrorOut if code == 422 else ErrorOut
        response: dict[str, Any] = {"model": model, "description": _ERROR_DESCRIPTIONS[code]}
        if code == 401:
            response["headers"] = {"WWW-Authenticate": {**_STRING_HEADER, "required": True}}
        elif code in (429, 503):
            response["headers"] = {"Retry-After": _STRING_HEADER}
        responses[code] = response
    return responses


def error_response(
    status_code: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status_code, headers=headers)


_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error_type(status_code: int) -> str:
    """OpenAI's ``error.type`` for an HTTP status."""
    return _OPENAI_ERROR_TYPES.get(status_code, "api_error")


def error_response_for(
    path: str,
    status_code: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
    **extra: Any,
) -> JSONResponse:
    """``{"detail": ...}`` everywhere; under ``/v1/`` also OpenAI's ``{"error": {message, type,
    param, code}}``, which is where OpenAI clients look, and OpenAI's 400 for what the rest of
    the API answers 422 (invalid input), which OpenAI's SDKs raise as ``BadRequestError``."""
    if path.startswith("/v1/"):
        if status_code == 422:
            status_code = 400
        extra["error"] = {
            "message": detail,
            "type": openai_error_type(status_code),
            "param": param,
            "code": code,
        }
    return error_response(status_code, detail, headers, **extra)


def _respond(
    request: Request,
    status_code: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return error_response_for(request.url.path, status_code, detail, headers, **extra)


def _field_of(errors: Sequence[Any]) -> str | None:
    """The first invalid field as OpenAI names it in ``param`` (``messages[0].content``)."""
    for error in errors:
        location = [part for part in error.get("loc", ()) if part != "body"]
        if location and error.get("type") != "json_invalid":
            name = str(location[0])
            for part in location[1:]:
                name += f"[{part}]" if isinstance(part, int) else f".{part}"
            return name
    return None


def _unavailable(request: Request, exc: Exception, detail: str) -> JSONResponse:
    logger.error("%s: %s", detail, exc.__class__.__name__)
    return _respond(request, 503, detail, {"Retry-After": UNAVAILABLE_RETRY_AFTER_S})


def _describe_validation_errors(errors: Sequence[Any]) -> str:
    if any(e.get("type") == "json_invalid" for e in errors):
        return "Malformed JSON body"
    parts = []
    for error in errors[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = error.get("msg", "invalid value")
        parts.append(f"{location}: {message}" if location else message)
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "; ".join(parts) or "Invalid request"


def _jsonable_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # The raw errors may hold the offending input (up to megabytes) and exception objects.
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in errors
    ]


def _allowed_methods(app: FastAPI, path: str) -> str:
    """Every method some route serves at ``path`` (RFC 9110's ``Allow``)."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        if route.path and route.methods and compile_path(route.path)[0].match(path):
            methods.update(route.methods)
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return _respond(
            request, exc.status_code, exc.detail, exc.headers, param=exc.param, code=exc.code
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        return _respond(
            request,
            422,
            _describe_validation_errors(errors),
            errors=_jsonable_errors(errors),
            param=_field_of(errors),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's answer to a JSON body that is not UTF-8; any other malformed JSON is a 422.
            return _respond(request, 422, "Malformed JSON body")
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            # FastAPI's answer to JSON nested deeper than the parser's recursion limit.
            return _respond(request, 422, "Malformed JSON body: nested too deeply")
        if exc.status_code == 405:
            # Starlette names only the methods of the first route that matched the path.
            headers = {**(headers or {}), "Allow": _allowed_methods(app, request.url.path)}
        return _respond(request, exc.status_code, str(exc.detail), headers)

    @app.exception_handler(ProviderError)
    async def _provider_error(request: Request, exc: ProviderError) -> JSONResponse:
        headers = {"Retry-After": str(round(exc.retry_after))} if exc.retry_after else None
        return _respond(request, exc.status, exc.client_message, headers)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # Input the database cannot store as given (e.g. NUL in PostgreSQL text).
        logger.info("data error: %s", type(exc.orig).__name__)
        return _respond(request, 422, "Input contains characters or values that cannot be stored")

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        # Constraints are checked by services first; reaching here means a concurrent change won.
        logger.warning("integrity conflict: %s", type(exc.orig).__name__)
        return _respond(request, 409, "Conflicting concurrent change; retry the request")

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return _unavailable(request, exc, "Database unavailable")

    @app.exception_handler(RedisError)
    async def _redis_unavailable(request: Request, exc: RedisError) -> JSONResponse:
        # Shared rate limits and live replies live in Redis when it is configured: without it
        # the request is refused before anything is stored.
        return _unavailable(request, exc, "Service temporarily unavailable (Redis)")

    @app.exception_handler(OSError)
    async def _connection_failed(request: Request, exc: OSError) -> JSONResponse:
        # A backing service's socket refused or vanished (asyncpg, for one, raises the OSError
        # of a failed connect unwrapped, where SQLAlchemy wraps other driver errors).
        return _unavailable(request, exc, "Service temporarily unavailable")

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        logger.exception(
            "unhandled error",
            extra={"request_id": request.scope.get("state", {}).get("request_id")},
        )
        return _respond(request, 500, "Internal server error")
