"""The one settings object. Read from the environment (prefix ``OMNICHAT_``) when the app is built,
never at import time."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values people paste from tutorials; a deployment using one of them would sign forgeable tokens.
_PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "secret-key",
        "secret_key",
        "your-secret-key",
        "your_secret_key",
        "supersecret",
        "mysecret",
        "development",
        "insecure",
    }
)
MIN_SECRET_LENGTH = 32
SECRET_KEY_FILENAME = "secret_key"  # noqa: S105 - a file name


class InsecureSecretKeyError(ValueError):
    pass


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNICHAT_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = None
    secret_key: SecretStr | None = None

    access_token_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 15
    refresh_token_days: Annotated[int, Field(ge=1, le=365)] = 30

    max_title_chars: Annotated[int, Field(ge=1, le=10_000)] = 200
    max_message_chars: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000
    max_request_bytes: Annotated[int, Field(ge=1024)] = 2 * 1024 * 1024
    max_page_size: Annotated[int, Field(ge=1, le=10_000)] = 1000

    db_pool_size: Annotated[int, Field(ge=1)] = 10
    # Bearer tokens, not cookies, authenticate requests, so any origin may call the API by default.
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    log_level: str = "INFO"
    access_log: bool = True

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.secret_key is not None:
            check_secret_key(self.secret_key.get_secret_value())
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'omnichat.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def signing_key(self) -> str:
        """The JWT signing key: configured, or generated once and kept in the data dir (0600)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return load_or_create_secret_key(self.data_dir)


def check_secret_key(value: str) -> None:
    if value.strip().lower() in _PLACEHOLDER_SECRETS:
        raise InsecureSecretKeyError(
            "OMNICHAT_SECRET_KEY is a known placeholder; set a random value"
        )
    if len(value) < MIN_SECRET_LENGTH:
        raise InsecureSecretKeyError(
            f"OMNICHAT_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters"
        )


def load_or_create_secret_key(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_KEY_FILENAME
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_urlsafe(48)
        # O_EXCL: two processes starting at once must agree on one key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            value = path.read_text().strip()
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(value)
    check_secret_key(value)
    return value
