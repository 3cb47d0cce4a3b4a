"""Provider failures, normalised: adapters turn every SDK error into one of these, so retry,
fallback and the HTTP layer never see SDK types (and never echo API keys)."""

from __future__ import annotations

import re

_SECRET_LIKE = re.compile(r"(sk-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{20,}|[A-Za-z0-9_-]{32,})")


def redact(text: str) -> str:
    return _SECRET_LIKE.sub("[redacted]", text)[:500]


class ProviderError(Exception):
    """``retryable``: the same request may succeed later (429, 5xx, timeouts, dropped
    connections). ``status``: what the client gets if it is the final error."""

    retryable = False
    status = 502

    def __init__(
        self, message: str, *, provider: str = "", retry_after: float | None = None
    ) -> None:
        self.message = redact(message)
        self.provider = provider
        self.retry_after = retry_after
        super().__init__(self.message)

    @property
    def client_message(self) -> str:
        who = f"{self.provider} " if self.provider else ""
        return f"The {who}provider failed: {self.message}"


class ProviderRateLimited(ProviderError):
    retryable = True
    status = 429


class ProviderUnavailable(ProviderError):
    """5xx, 408, 409 from the provider."""

    retryable = True


class ProviderConnectionError(ProviderError):
    retryable = True


class ProviderTimeout(ProviderError):
    retryable = True
    status = 504


class ProviderRejected(ProviderError):
    """4xx other than rate limits: the request (or our credentials) will not work as is."""


RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})


def error_for_status(
    status: int, message: str, *, provider: str, retry_after: float | None
) -> ProviderError:
    if status == 429:
        return ProviderRateLimited(message, provider=provider, retry_after=retry_after)
    if status in RETRYABLE_STATUSES or status >= 500:
        return ProviderUnavailable(
            f"HTTP {status}: {message}", provider=provider, retry_after=retry_after
        )
    return ProviderRejected(f"HTTP {status}: {message}", provider=provider)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            from datetime import UTC, datetime

            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)
