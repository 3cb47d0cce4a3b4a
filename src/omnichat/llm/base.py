"""The ``ChatModel`` protocol every provider adapter implements, and SDK error translation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from omnichat.errors import BadRequest, UnsupportedField
from omnichat.llm.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    error_for_status,
    parse_retry_after,
)
from omnichat.llm.types import Completion, GenerationRequest, Sampling, StreamEvent, ToolCall


class ChatModel(Protocol):
    """One provider's chat API. ``stream`` yields ``TextDelta`` events then one ``StreamEnd``;
    both methods raise only ``ProviderError``."""

    provider: str

    def check(self, request: GenerationRequest) -> None:
        """Raises ``UnsupportedField`` (400) naming a field of ``request`` the provider has no
        native form for; the same check the request's translation makes."""

    async def generate(self, request: GenerationRequest) -> Completion: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None:
        """Closes the SDK client's connections (at shutdown)."""


@dataclass(frozen=True)
class ProviderConfig:
    """How to reach one provider: its key, optional base URL, and the client timeouts. The idle
    timeout is the HTTP read timeout: no byte from the provider for that long fails the call."""

    name: str
    kind: str
    api_key: str
    base_url: str | None = None
    connect_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0

    def timeout_arguments(self) -> dict[str, float]:
        """For an httpx(2) ``Timeout``: each SDK brings its own httpx flavour."""
        return {
            "connect": self.connect_timeout_s,
            "read": self.idle_timeout_s,
            "write": self.idle_timeout_s,
            "pool": self.connect_timeout_s,
        }


_TIMEOUT_CLASSES = frozenset({"TimeoutException", "APITimeoutError"})
_CONNECTION_CLASSES = frozenset(
    {"TransportError", "APIConnectionError", "StreamClosedError", "ClientConnectionError"}
)


def _headers_of(exc: BaseException) -> Mapping[str, str]:
    headers = getattr(exc, "headers", None)
    if isinstance(headers, Mapping):
        return headers
    response = getattr(exc, "response", None)
    response_headers = getattr(response, "headers", None)
    if response_headers is not None:
        return dict(response_headers)
    return {}


def _status_of(exc: BaseException) -> int | None:
    for attribute in ("status_code", "code"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    return None


def _message_of(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message
    body: Any = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return type(exc).__name__


def translate_error(exc: BaseException, provider: str) -> ProviderError:
    """Any exception an SDK raises, as a ``ProviderError`` (never the SDK's own text verbatim
    where it could carry request headers; ``redact`` strips key-like strings)."""
    if isinstance(exc, ProviderError):
        return exc
    name = type(exc).__name__
    # By class name: the SDKs raise httpx or httpx2 exceptions, or their own subclasses.
    lineage = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, TimeoutError) or lineage & _TIMEOUT_CLASSES:
        return ProviderTimeout("the provider did not answer in time", provider=provider)
    status = _status_of(exc)
    if status is not None:
        headers = {k.lower(): v for k, v in _headers_of(exc).items()}
        return error_for_status(
            status,
            _message_of(exc),
            provider=provider,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
    if lineage & _CONNECTION_CLASSES:
        return ProviderConnectionError(
            f"connection to the provider failed ({name})", provider=provider
        )
    return ProviderError(f"unexpected provider error ({name})", provider=provider)


def stream_cut(provider: str) -> ProviderConnectionError:
    """A stream that ended without the provider's terminal event was cut, not finished."""
    return ProviderConnectionError(
        "the provider's stream ended before the reply was complete", provider=provider
    )


def tool_call_arguments(call: ToolCall, provider: str | None, where: str) -> dict[str, Any]:
    """A call's ``arguments`` (JSON text, as OpenAI carries them) as the object Anthropic's
    ``input`` and Gemini's ``args`` are; empty text is no arguments. Anything but a JSON object
    is a ``BadRequest`` naming ``where`` (``messages[1].tool_calls[0].function.arguments``) and,
    when given, the ``provider`` that needs the object."""
    if not call.arguments.strip():
        return {}
    try:
        arguments = json.loads(call.arguments)
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise BadRequest(
            f"The arguments of tool call '{call.id}' must be a JSON object"
            + (f" for {provider}" if provider else ""),
            param=where,
        )
    return arguments


def refuse_openai_only(sampling: Sampling, provider: str) -> None:
    """Fields only OpenAI's API has (``Sampling.openai_only``): a 400 naming the first one set,
    for providers with no form of them."""
    for name in sampling.openai_only:
        raise UnsupportedField(name, provider)


def require_dialogue(request: GenerationRequest, provider: str) -> None:
    """Providers that take instructions apart from the conversation (Anthropic, Gemini) need at
    least one user or assistant turn; a /v1 request of system messages only is a 400."""
    if not request.dialogue():
        raise BadRequest(
            f"{provider} needs at least one user or assistant message besides the system ones",
            param="messages",
        )
