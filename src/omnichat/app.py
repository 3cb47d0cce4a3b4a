"""The FastAPI application: one core serving every dialect."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from omnichat import __version__
from omnichat.apidocs.routes import router as api_docs_router
from omnichat.apikeys.routes import router as api_keys_router
from omnichat.auth import passwords
from omnichat.auth.routes import auth_router, oauth_router
from omnichat.auth.routes import express_router as express_auth_router
from omnichat.chats.routes import express_router as express_chats_router
from omnichat.chats.routes import sessions_router
from omnichat.container import Container, build_container
from omnichat.documents.routes import router as documents_router
from omnichat.errors import install_error_handlers
from omnichat.generation.routes import router as generation_router
from omnichat.llm.base import ChatModel, ProviderConfig
from omnichat.openai_api.embeddings import router as openai_embeddings_router
from omnichat.openai_api.models import router as openai_models_router
from omnichat.openai_api.routes import router as openai_router
from omnichat.ops.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from omnichat.ops.routes import router as ops_router
from omnichat.ops.shutdown import on_stop_signal
from omnichat.settings import Settings
from omnichat.web.routes import router as web_router

logger = logging.getLogger("omnichat.app")
UPLOAD_PATH = "/upload/document"
V1_CHAT_PATH = "/v1/chat/completions"
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def replies_grace_s(shutdown_grace_s: float) -> float:
    """At SIGTERM, how long running replies may go on: the server's grace for open connections,
    less the time their streams need to send their closing events and close (up to 1 s)."""
    return shutdown_grace_s - min(1.0, shutdown_grace_s / 2)


async def _warm_up(embedder: object) -> None:
    warm_up = getattr(embedder, "warm_up", None)
    if warm_up is None:
        return
    try:
        await warm_up()
    except Exception:  # the first upload or question retries it and reports the error
        logger.exception("the embedding model did not load")


def _openapi_without_422_under_v1(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, less the 422 it lists for every body under ``/v1/``, where invalid
    input is OpenAI's 400 (``errors.error_response_for``)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(
    settings: Settings | None = None,
    model_factories: dict[str, Callable[[ProviderConfig], ChatModel]] | None = None,
) -> FastAPI:
    """``model_factories`` replaces provider adapters by kind (tests and benchmarks only)."""
    settings = settings or Settings()
    container = build_container(settings, model_factories)

    async def begin_shutdown() -> None:
        """At SIGTERM: running replies end within the grace, their streams with them."""
        await container.generation.hub.shutdown(replies_grace_s(settings.shutdown_grace_s))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await passwords.warm_up()
        container.generation.registry.warm_up()
        await container.generation.hub.start()
        interrupted = await container.generation.mark_interrupted()
        if interrupted:
            logger.warning("marked interrupted replies", extra={"count": interrupted})
        reply_watch = asyncio.create_task(container.generation.watch_replies())
        await container.vector_index.start()
        # A local model loads (and is exported to ONNX, the first time) while the server
        # already answers, rather than on the first upload or question.
        embedder_warm_up = asyncio.create_task(_warm_up(container.vector_index.embedder))
        ingestor = container.documents.ingestor
        resumed = await ingestor.resume()
        if resumed:
            logger.warning("resumed indexing interrupted documents", extra={"count": resumed})
        try:
            with on_stop_signal(begin_shutdown):
                yield
        finally:
            # In-flight replies finish (or are stopped and stored) before the database closes;
            # documents being indexed stay ``processing`` and resume at the next start.
            embedder_warm_up.cancel()
            await ingestor.shutdown()
            await container.generation.hub.shutdown(settings.shutdown_grace_s)
            reply_watch.cancel()
            await container.generation.registry.aclose()
            ingestor.extractor.close()
            await container.database.dispose()

    app = FastAPI(
        title="OmniChat",
        version=__version__,
        description="Multi-provider LLM chat backend: accounts, chat history, streaming, RAG.",
        lifespan=lifespan,
        # FastAPI's pages load scripts from a CDN: api_docs_router serves them from the package.
        docs_url=None,
        redoc_url=None,
    )
    app.state.container = container
    install_error_handlers(app)
    app.openapi = partial(_openapi_without_422_under_v1, app)  # type: ignore[method-assign]
    for router in (
        ops_router,
        api_docs_router,
        express_auth_router,
        oauth_router,
        auth_router,
        express_chats_router,
        sessions_router,
        generation_router,
        api_keys_router,
        openai_models_router,
        openai_router,
        openai_embeddings_router,
        documents_router,
        *([web_router] if settings.web_ui else []),  # "/" and "/ui/*": the browser UI
    ):
        app.include_router(router)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        # The file's own limit is checked exactly as it is copied; this bounds the multipart body.
        path_limits={
            UPLOAD_PATH: settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
            V1_CHAT_PATH: settings.max_chat_request_bytes,
        },
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "Retry-After"],
        max_age=600,
    )
    app.add_middleware(RequestContextMiddleware, access_log=settings.access_log)
    return app


def container_of(app: FastAPI) -> Container:
    container: Container = app.state.container
    return container
