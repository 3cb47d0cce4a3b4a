"""The one settings object. Read from the environment (prefix ``OMNICHAT_``) when the app is built,
never at import time."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from limits import parse
from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from omnichat.private_files import PRIVATE_FILE_MODE, make_private_dirs

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


# Each provider's offered models (the first is its default); OMNICHAT_<NAME>_MODELS replaces them.
DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "openai": ("gpt-5.4-mini", "gpt-5.5", "gpt-5.4", "gpt-4.1-mini"),
    "anthropic": ("claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5", "claude-haiku-4-5"),
    "gemini": ("gemini-3.8-flash", "gemini-3.5-flash", "gemini-3.1-pro-preview", "gemini-2.5-pro"),
    "cohere": ("command-a-plus-05-2026", "command-a-03-2025", "command-r-08-2024"),
}


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


# Comma-separated in the environment ("a,b,c"), a list in code.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]


def _rate(value: str) -> str:
    """A rate in the ``limits`` library's notation ("60/minute", "10/15 minutes"), checked at
    start-up rather than at the first request."""
    try:
        parse(value)
    except ValueError as exc:
        raise ValueError(f"not a rate such as '60/minute' or '10/15 minutes': {value!r}") from exc
    return value


Rate = Annotated[str, AfterValidator(_rate)]


class InsecureSecretKeyError(ValueError):
    pass


class ConfigurationError(ValueError):
    """Settings that do not validate, described by environment variable and rule only: never by
    value (pydantic's own message repeats the input, secrets included)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))

    @classmethod
    def of(cls, error: ValidationError) -> ConfigurationError:
        problems = []
        for item in error.errors(include_input=False, include_url=False):
            field = ".".join(str(part) for part in item["loc"])
            rule = item["msg"].removeprefix("Value error, ")
            problems.append(f"OMNICHAT_{field.upper()}: {rule}" if field else rule)
        return cls(problems)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNICHAT_", extra="ignore", populate_by_name=True)

    def __init__(self, **values: Any) -> None:
        """From the environment (and ``values``). ``ConfigurationError`` naming each variable
        at fault and its rule, never its value."""
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ConfigurationError.of(error) from None

    data_dir: Path = Path("./data")
    database_url: str | None = None
    secret_key: SecretStr | None = None

    access_token_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 15
    refresh_token_days: Annotated[int, Field(ge=1, le=365)] = 30
    # A rotated refresh token presented again this many seconds after its rotation at most (a
    # retry, a second tab) gets a pair of the same login; later, reuse ends the login. 0: none.
    refresh_reuse_leeway_s: Annotated[float, Field(ge=0, le=600)] = 30.0

    max_title_chars: Annotated[int, Field(ge=1, le=10_000)] = 200
    max_message_chars: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000
    max_request_bytes: Annotated[int, Field(ge=1024)] = 2 * 1024 * 1024
    # /v1/chat/completions may carry images as data: URLs (20 MB each at most).
    max_chat_request_bytes: Annotated[int, Field(ge=1024)] = 32 * 1024 * 1024
    max_page_size: Annotated[int, Field(ge=1, le=10_000)] = 1000

    db_pool_size: Annotated[int, Field(ge=1)] = 10

    # -- LLM providers: OMNICHAT_<NAME>_API_KEY, falling back to each SDK's own variable ---------
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OMNICHAT_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = None
    openai_models: CommaList = Field(default_factory=lambda: list(DEFAULT_MODELS["openai"]))
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OMNICHAT_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = None
    anthropic_models: CommaList = Field(default_factory=lambda: list(DEFAULT_MODELS["anthropic"]))
    gemini_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OMNICHAT_GEMINI_API_KEY", "GEMINI_API_KEY")
    )
    gemini_base_url: str | None = None
    gemini_models: CommaList = Field(default_factory=lambda: list(DEFAULT_MODELS["gemini"]))
    cohere_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OMNICHAT_COHERE_API_KEY", "CO_API_KEY")
    )
    cohere_base_url: str | None = None
    cohere_models: CommaList = Field(default_factory=lambda: list(DEFAULT_MODELS["cohere"]))
    # Optional TOML file adding named OpenAI-compatible providers (Ollama, vLLM, OpenRouter...).
    providers_file: Path | None = None

    default_model: str | None = None
    fallback_models: CommaList = Field(default_factory=list)
    # Models that read no images, as ``provider:model`` patterns (fnmatch: ``openai:gpt-3.5*``):
    # a /v1 image to one is a 400 naming the part, and a text-only fallback is skipped.
    text_only_models: CommaList = Field(default_factory=list)
    system_prompt: str = "You are a helpful assistant."
    # /v1 is stateless and exact: the client's messages only, unless this puts system_prompt
    # in front of them.
    v1_system_prompt: bool = False
    max_output_tokens: Annotated[int, Field(ge=1, le=1_000_000)] = 2048
    # /v1's ``n``: each choice is its own provider call, run concurrently under one slot.
    max_choices: Annotated[int, Field(ge=1, le=128)] = 8
    context_tokens: Annotated[int | None, Field(ge=256)] = None

    llm_connect_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    llm_first_token_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    llm_idle_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    llm_max_generation_s: Annotated[float, Field(gt=0)] = 600.0
    # How often a process refreshes its running replies; one left 3 intervals without a
    # refresh (its process died) is stored as interrupted.
    reply_heartbeat_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    llm_max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    llm_retry_base_delay_s: Annotated[float, Field(ge=0)] = 0.5
    llm_retry_max_delay_s: Annotated[float, Field(ge=0)] = 8.0
    llm_max_retry_after_s: Annotated[float, Field(ge=0)] = 30.0
    stream_keepalive_s: Annotated[float, Field(gt=0)] = 15.0
    # SIGTERM/SIGINT: open connections get this long to close. Running replies get it less up to
    # 1 s, then are stopped and stored, and every stream following one gets its closing event
    # and [DONE] (a /v1 stream: OpenAI's in-stream error, then [DONE]) before the grace ends.
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 20.0

    # -- the HTTP edge (omnichat.ops.edge), per worker process ------------------------------------
    # The request line and headers together, in bytes; a longer head gets 431 and its
    # connection is closed (at most this plus one 256 KiB read is ever held for it).
    max_header_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    # Seconds a client has to send a whole request head, from opening its connection or from
    # the first byte of its next request; then 408 and the connection is closed.
    header_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    # Seconds a request body may go without a byte arriving (while the server is ready to read
    # it); then the connection is dropped. Idle time, not total: a slow upload that keeps
    # sending is never cut.
    body_idle_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # Seconds a kept-alive connection may sit idle between requests before it is closed.
    keep_alive_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    # Open connections per client address (the peer); more get 429 and are closed at once.
    # Trusted proxies (uvicorn's FORWARDED_ALLOW_IPS, default 127.0.0.1 and ::1) are not capped:
    # every client behind one arrives from its address, so the proxy must cap them.
    max_connections_per_address: Annotated[int, Field(ge=1)] = 100
    # Clients re-attached at once to a user's running replies (GET /chat/stream/{id}); more
    # get 429 with Retry-After until one leaves. Shared through Redis when it is configured.
    max_followers_per_user: Annotated[int, Field(ge=1)] = 20

    # -- limits on generation, per user ----------------------------------------------------------
    redis_url: str | None = None
    generation_rate_limit: Rate = "60/minute"
    # Failed logins per email (successful ones never count).
    failed_login_limit: Rate = "10/15 minutes"
    # Every login and every registration attempt per client address (the peer, or behind a
    # trusted proxy the address it forwards), counted before any password is hashed.
    login_address_limit: Rate = "30/minute"
    register_address_limit: Rate = "20/hour"
    # Uploads refused as too complex to index (a parser's time or memory ran out), per user:
    # past it, uploads answer 429 until the window moves on.
    failed_upload_limit: Rate = "5/10 minutes"
    max_concurrent_generations: Annotated[int, Field(ge=1)] = 4
    # -- documents and RAG -------------------------------------------------------------------------
    # Originals of uploads: a folder in the data dir by default, or s3://bucket/prefix.
    blob_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # auto: sqlite-vec on SQLite, pgvector on PostgreSQL; or "pinecone" (PINECONE_API_KEY).
    vector_store: str = "auto"
    pinecone_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OMNICHAT_PINECONE_API_KEY", "PINECONE_API_KEY")
    )
    pinecone_index: str = "omnichat"
    # The index's data-plane host; if unset it is looked up through the control plane.
    pinecone_host: str | None = None
    # "local" (all-MiniLM-L6-v2 on ONNX Runtime, offline), "local-torch" (the same model on
    # torch, for comparison) or provider:model, e.g. openai:text-embedding-3-small.
    embedder: str = "local"
    embed_batch_size: Annotated[int, Field(ge=1, le=2048)] = 32
    # ONNX Runtime threads of the local embedder; 0: one per core this process may use.
    embed_threads: Annotated[int, Field(ge=0, le=256)] = 0
    # Where the local embedder's ONNX export is cached (checksummed); default <data dir>/models.
    model_cache_dir: Path | None = None
    chunk_tokens: Annotated[int, Field(ge=32, le=8192)] = 254
    chunk_overlap_tokens: Annotated[int, Field(ge=0, le=1024)] = 32
    max_upload_bytes: Annotated[int, Field(ge=1024)] = 25 * 1024 * 1024
    max_documents_per_user: Annotated[int, Field(ge=1)] = 500
    max_document_bytes_per_user: Annotated[int, Field(ge=1024)] = 1024 * 1024 * 1024
    max_pdf_pages: Annotated[int, Field(ge=1)] = 5000
    max_extracted_chars: Annotated[int, Field(ge=1000)] = 20_000_000
    # Prose makes ~1,000 characters a chunk, so a document at max_extracted_chars stays under
    # this; text of one-character tokens would make ~80,000 (an hour of embedding).
    max_chunks_per_document: Annotated[int, Field(ge=1)] = 25_000
    # DOCX (a zip) is checked before it is unpacked.
    max_docx_uncompressed_bytes: Annotated[int, Field(ge=1024)] = 200 * 1024 * 1024
    max_docx_entries: Annotated[int, Field(ge=1)] = 5000
    max_docx_compression_ratio: Annotated[float, Field(gt=1)] = 100.0
    rag_top_k: Annotated[int, Field(ge=1, le=50)] = 5
    # Candidates taken from each of vector and keyword search before fusion.
    rag_candidates: Annotated[int, Field(ge=1, le=500)] = 30
    # "convex": weighted sum of normalized scores; "rrf": reciprocal rank fusion (k = 60).
    rag_fusion: Literal["convex", "rrf"] = "convex"
    rag_vector_weight: Annotated[float, Field(ge=0, le=1)] = 0.6
    # Document parsers run in worker processes, each capped in memory and time (a file that
    # needs more is refused as "too complex to index", its worker replaced).
    extraction_workers: Annotated[int, Field(ge=1, le=64)] = 2
    parser_memory_mb: Annotated[int, Field(ge=128)] = 512
    # A parser's own deadline: this much, plus parse_deadline_per_page_s per PDF page.
    parse_deadline_s: Annotated[float, Field(gt=0)] = 10.0
    parse_deadline_per_page_s: Annotated[float, Field(ge=0)] = 0.02
    # The hard limit for one slice of a PDF: a worker still busy after this long is killed.
    # Other kinds get min(this, 2 * parse_deadline_s).
    parse_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    # A longer PDF is read in slices of this many pages (or of 2 s, if less), each a job that
    # takes its own turn, so other users' uploads are read between them; its deadline and
    # limits still count the whole document, and parse_timeout_s bounds each slice.
    parse_slice_pages: Annotated[int, Field(ge=1)] = 200
    # OCR of PDF pages without a text layer (0 pages: off), one page per job.
    ocr_max_pages: Annotated[int, Field(ge=0)] = 50
    ocr_page_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    ocr_budget_s: Annotated[float, Field(gt=0)] = 600.0
    # Pages OCR'd per user in any hour (a moving window, shared through Redis when configured):
    # past it a user's scanned pages are left unread until the window moves on.
    ocr_pages_per_hour: Annotated[int, Field(ge=1)] = 300
    # Splitting extracted text into chunks (semchunk, pure Python) runs in these workers, not
    # in the server: each with its own memory cap and a time limit per document (a text at
    # max_extracted_chars takes ~50 s on one core).
    chunker_workers: Annotated[int, Field(ge=1, le=64)] = 2
    chunker_memory_mb: Annotated[int, Field(ge=128)] = 1024
    chunk_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    ocr_workers: Annotated[int, Field(ge=1, le=64)] = 1
    ocr_memory_mb: Annotated[int, Field(ge=256)] = 2048

    # Bearer tokens, not cookies, authenticate requests, so any origin may call the API by default.
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    log_level: str = "INFO"
    access_log: bool = True
    # The browser chat UI at "/" (static files, a client of the public API).
    web_ui: bool = True

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
    def resolved_blob_url(self) -> str:
        return self.blob_url or (self.data_dir / "blobs").resolve().as_uri()

    @property
    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

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
    make_private_dirs(data_dir)
    path = data_dir / SECRET_KEY_FILENAME
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_urlsafe(48)
        # O_EXCL: two processes starting at once must agree on one key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        except FileExistsError:
            value = path.read_text().strip()
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(value)
    check_secret_key(value)
    return value
