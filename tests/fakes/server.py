"""One raw-ASGI app serving all four providers' routes, run by uvicorn on loopback.

Tests: `FakeProviderServer().start()` (a background thread, free port) or the fixtures in
tests/fakes/fixtures.py. Benchmarks: `python -m tests.fakes --port N --tokens 50 --interval-ms 10`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from types import TracebackType
from typing import Any, NamedTuple, Self

import uvicorn

from tests.fakes._common import (
    LENGTH,
    Finish,
    GenRequest,
    ProviderFormat,
    ToolCallFormat,
    split_tokens,
)
from tests.fakes._respond import Disconnect, Receive, Run, Send, respond, respond_events
from tests.fakes.anthropic_format import AnthropicFormat
from tests.fakes.behaviours import (
    Behaviour,
    CutAfter,
    Fail,
    Hang,
    HangAfter,
    PromptBlocked,
    Reply,
    ToolCalls,
)
from tests.fakes.cohere_format import CohereFormat
from tests.fakes.gemini_format import GeminiFormat
from tests.fakes.openai_format import OpenAIFormat

Scope = MutableMapping[str, Any]

_DEFAULT_MESSAGES = {
    400: "Invalid request (fake).",
    401: "Invalid API key (fake).",
    403: "Forbidden (fake).",
    404: "Not found (fake).",
    429: "Rate limit exceeded (fake).",
    500: "Internal server error (fake).",
    503: "Service unavailable (fake).",
}


class RecordedRequest(NamedTuple):
    """One request as the server received it. `path` includes the query string, if any."""

    provider: str  # "openai" | "anthropic" | "gemini" | "cohere" | "unknown"
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None (GET, empty or non-JSON body)


def _retry_after(value: float) -> bytes:
    return (str(int(value)) if float(value).is_integer() else repr(float(value))).encode()


def _split_path(raw: str) -> tuple[str, str] | None:
    """(provider, kind) for a path, kind being "generate", "embeddings" or "models"."""
    if raw == "/v1/chat/completions":
        return "openai", "generate"
    if raw == "/v1/messages":
        return "anthropic", "generate"
    if raw == "/v2/chat":
        return "cohere", "generate"
    if raw == "/v1/embeddings":
        return "openai", "embeddings"
    if raw == "/v2/embed":
        return "cohere", "embeddings"
    if raw.startswith(("/v1beta/models/", "/v1/models/")) and raw.endswith(
        (":generateContent", ":streamGenerateContent")
    ):
        return "gemini", "generate"
    if raw.startswith(("/v1beta/models/", "/v1/models/")) and raw.endswith(
        (":embedContent", ":batchEmbedContents")
    ):
        return "gemini", "embeddings"
    if raw in ("/v1/models", "/v1beta/models"):
        return "?", "models"
    return None


def _models_provider(path: str, headers: dict[str, str]) -> str:
    """GET /v1/models is shared by all four APIs: tell the SDKs apart by their headers."""
    if path.startswith("/v1beta/") or "x-goog-api-key" in headers:
        return "gemini"
    if "anthropic-version" in headers or "x-api-key" in headers:
        return "anthropic"
    if headers.get("x-fern-sdk-name", "").lower() == "cohere":
        return "cohere"
    return "openai"


class FakeProviderServer:
    """Fake OpenAI, Anthropic, Gemini and Cohere endpoints behind one loopback port.

    `script(*behaviours)` queues behaviours (FIFO, one per generation request, whatever the
    provider); `script_embeddings(*failures)` queues failures for embedding requests on their own
    (so scripted replies stay with generations); `requests` records every request;
    `tokens`/`interval_s` shape the default reply (None: "Echo: <last user text>"; N: that
    echo's tokens cycled to N tokens).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokens: int | None = None,
        interval_s: float = 0.0,
        embedding_dim: int = 64,
        record: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.tokens = self._default_tokens_setting = tokens
        self.interval_s = self._default_interval = interval_s
        self.embedding_dim = embedding_dim
        self.record = record
        self.requests: list[RecordedRequest] = []
        self._script: deque[Behaviour] = deque()
        self._embedding_script: deque[Fail] = deque()
        self._lock = threading.Lock()
        self._formats: dict[str, ProviderFormat] = {
            f.name: f for f in (OpenAIFormat(), AnthropicFormat(), GeminiFormat(), CohereFormat())
        }
        self._openai = OpenAIFormat()
        self._cohere = CohereFormat()
        self._gemini = GeminiFormat()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.generation_count = 0  # generation requests served since start/reset
        self.generations_open = 0  # generation responses being sent now (streams still open)

    # ---------------------------------------------------------------- scripting

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url_for(self, provider: str) -> str:
        """The base_url to give that provider's SDK (OpenAI's includes /v1, the others don't)."""
        return f"{self.base_url}/v1" if provider == "openai" else self.base_url

    def script(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._script.extend(behaviours)

    def script_embeddings(self, *failures: Fail) -> None:
        """The next embedding requests fail like this, one each; then they succeed again."""
        with self._lock:
            self._embedding_script.extend(failures)

    def reset(self) -> None:
        """Forget the script and the recorded requests; default tokens/interval again."""
        with self._lock:
            self._script.clear()
            self._embedding_script.clear()
        self.requests.clear()
        self.generation_count = 0
        self.tokens = self._default_tokens_setting
        self.interval_s = self._default_interval

    @property
    def pending(self) -> int:
        """How many scripted behaviours are still unused."""
        return len(self._script)

    def requests_for(self, provider: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.provider == provider]

    def _next(self) -> Behaviour | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    # ---------------------------------------------------------------- lifecycle

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        sock.set_inheritable(True)
        return sock

    def _config(self, **kwargs: Any) -> uvicorn.Config:
        return uvicorn.Config(
            self,
            interface="asgi3",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
            **kwargs,
        )

    def start(self, timeout: float = 10.0) -> Self:
        """Serves from a background thread; returns once the port accepts connections."""
        self._socket = self._bind()
        self._server = uvicorn.Server(self._config(log_config=None, log_level="warning"))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"fake-providers:{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake provider server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Runs in the calling thread until SIGINT/SIGTERM (the `python -m tests.fakes` mode).

        `on_ready` runs once the port is bound and listening (connections queue from then on).
        """
        sock = self._bind()
        sock.listen(2048)
        if on_ready is not None:
            on_ready()
        uvicorn.Server(self._config(log_level="warning", backlog=2048)).run(sockets=[sock])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        query = scope["query_string"].decode("latin-1")
        full_path = f"{path}?{query}" if query else path
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        raw = b"".join(chunks)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        route = _split_path(path)
        provider = route[0] if route else "unknown"
        if route and route[1] == "models":
            provider = _models_provider(path, headers)
        if self.record:
            self.requests.append(RecordedRequest(provider, full_path, headers, body))
        if route is None:
            await respond(send, 404, self._openai.error(404, f"No route for {path} (fake)."))
            return
        fmt = self._formats[provider]
        method = scope["method"]
        kind = route[1]
        if kind == "models" and method == "GET":
            await respond(send, 200, fmt.models())
        elif method != "POST" or kind == "models":
            await respond(send, 405, fmt.error(405, f"{method} not allowed here (fake)."))
        elif not isinstance(body, dict):
            await respond(send, 400, fmt.error(400, "The request body is not a JSON object."))
        elif kind == "embeddings":
            await self._embed(fmt, provider, path, body, send)
        else:
            self.generation_count += 1
            await self._generate(fmt, fmt.parse(path, body), receive, send)

    async def _embed(
        self, fmt: ProviderFormat, provider: str, path: str, body: dict[str, Any], send: Send
    ) -> None:
        with self._lock:
            failure = self._embedding_script.popleft() if self._embedding_script else None
        if failure is not None:
            await self._fail(fmt, failure, send)
        elif provider == "cohere":
            await respond(send, 200, self._cohere.embeddings(body, self.embedding_dim))
        elif provider == "gemini":
            await respond(send, 200, self._gemini.embeddings(path, body, self.embedding_dim))
        else:
            await respond(send, 200, self._openai.embeddings(body, self.embedding_dim))

    async def _fail(self, fmt: ProviderFormat, behaviour: Fail, send: Send) -> None:
        await asyncio.sleep(behaviour.after_s)
        message = behaviour.message or _DEFAULT_MESSAGES.get(behaviour.status, "Error (fake).")
        extra = []
        if behaviour.retry_after is not None:
            extra.append((b"retry-after", _retry_after(behaviour.retry_after)))
        await respond(
            send,
            behaviour.status,
            fmt.error(behaviour.status, message, behaviour.retry_after),
            extra,
        )

    async def _prompt_blocked(
        self, fmt: ProviderFormat, req: GenRequest, behaviour: PromptBlocked, send: Send
    ) -> None:
        if fmt.name != "gemini":
            message = "PromptBlocked is scripted for Gemini only (fake)."
            await respond(send, 400, fmt.error(400, message))
        elif req.stream:
            body = self._gemini.prompt_blocked(req, behaviour.block_reason, stream=True)
            await respond_events(send, fmt.stream_content_type, body)
        else:
            await respond(send, 200, self._gemini.prompt_blocked(req, behaviour.block_reason))

    async def _tool_calls(
        self, fmt: ProviderFormat, req: GenRequest, behaviour: ToolCalls, send: Send
    ) -> None:
        if not isinstance(fmt, ToolCallFormat):
            message = f"ToolCalls is not scripted for {fmt.name} (fake)."
            await respond(send, 400, fmt.error(400, message))
            return
        body = fmt.tool_calls(req, behaviour.calls, behaviour.text)
        if req.stream:
            await respond_events(send, fmt.stream_content_type, body)
        else:
            await respond(send, 200, body)

    # ---------------------------------------------------------------- generation

    def _default_reply(self, req: GenRequest) -> tuple[list[str], str]:
        tokens = split_tokens(f"Echo: {req.last_user_text}")
        if self.tokens is not None and tokens:
            n = self.tokens
            tokens = [tokens[i % len(tokens)] for i in range(n)]
            if n > 0 and not tokens[0].startswith(" "):
                tokens = [tokens[0]] + [t if t[:1].isspace() else " " + t for t in tokens[1:]]
        if req.max_tokens is not None and len(tokens) > req.max_tokens:
            return tokens[: req.max_tokens], LENGTH
        return tokens, "stop"

    def _tokens(
        self, req: GenRequest, text: str | None, tokens: list[str] | None
    ) -> tuple[list[str], str]:
        if tokens is not None:
            return list(tokens), "stop"
        if text is not None:
            return split_tokens(text), "stop"
        return self._default_reply(req)

    async def _generate(
        self, fmt: ProviderFormat, req: GenRequest, receive: Receive, send: Send
    ) -> None:
        behaviour = self._next()
        if isinstance(behaviour, Fail):
            await self._fail(fmt, behaviour, send)
            return
        if isinstance(behaviour, PromptBlocked):
            await self._prompt_blocked(fmt, req, behaviour, send)
            return
        if isinstance(behaviour, ToolCalls):
            await self._tool_calls(fmt, req, behaviour, send)
            return
        disconnect = Disconnect(receive)
        self.generations_open += 1
        try:
            if isinstance(behaviour, Hang):
                if await disconnect.wait(behaviour.seconds):
                    return
                behaviour = None
            interval = self.interval_s
            cut_at: int | None = None
            hang_at: int | None = None
            hang_s = 0.0
            finish: Finish
            if isinstance(behaviour, Reply):
                tokens, finish = self._tokens(req, behaviour.text, behaviour.tokens)
                finish = finish if behaviour.finish == "stop" else behaviour.finish
                if behaviour.interval_s is not None:
                    interval = behaviour.interval_s
            elif isinstance(behaviour, CutAfter):
                tokens, finish = self._tokens(req, behaviour.text, behaviour.tokens)
                cut_at = behaviour.n_tokens
            elif isinstance(behaviour, HangAfter):
                tokens, finish = self._tokens(req, behaviour.text, behaviour.tokens)
                hang_at, hang_s = behaviour.n_tokens, behaviour.seconds
            else:
                tokens, finish = self._default_reply(req)
            run = Run(fmt, req, tokens, finish, interval, send, disconnect)
            run.cut_at, run.hang_at, run.hang_s = cut_at, hang_at, hang_s
            await (run.stream() if req.stream else run.whole())
        finally:
            self.generations_open -= 1
            disconnect.close()
