"""``omnichat serve``, ``omnichat migrate``, ``omnichat repair`` and ``omnichat reindex``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from omnichat.db.engine import create_engine_from_url
from omnichat.db.migrate import upgrade_to_head
from omnichat.ops.middleware import configure_logging
from omnichat.settings import InsecureSecretKeyError, Settings

if TYPE_CHECKING:
    from omnichat.documents.reindex import ReindexReport
    from omnichat.documents.repair import RepairReport

logger = logging.getLogger("omnichat.cli")


async def migrate(settings: Settings) -> None:
    engine = create_engine_from_url(settings.resolved_database_url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


async def repair(settings: Settings) -> RepairReport:
    """Settles documents stored under a shared original (``omnichat.documents.repair``)."""
    from omnichat.blobs.factory import build_blob_store
    from omnichat.db.engine import create_database
    from omnichat.documents.repair import repair_originals

    database = create_database(settings)
    try:
        return await repair_originals(
            database, build_blob_store(settings), settings.data_dir / "tmp"
        )
    finally:
        await database.dispose()


async def reindex(settings: Settings) -> ReindexReport:
    from omnichat.container import build_container
    from omnichat.documents.reindex import reindex as rebuild

    await migrate(settings)
    await repair(settings)
    container = build_container(settings)
    try:
        return await rebuild(
            container.database, container.vector_index, container.documents.ingestor
        )
    finally:
        container.documents.ingestor.extractor.close()
        await container.database.dispose()


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    from omnichat.app import create_app
    from omnichat.ops.edge import EdgeLimits, edge_protocol
    from omnichat.ops.listen import serve

    if workers > 1 and not settings.redis_url:
        sys.exit(
            "omnichat: --workers above 1 needs OMNICHAT_REDIS_URL: live replies (stop, "
            "re-attach) and per-user limits are shared between workers through Redis"
        )
    asyncio.run(migrate(settings))
    logger.info("migrations applied", extra={"database": _redacted(settings)})
    asyncio.run(repair(settings))
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,  # our middleware writes the JSON access log
        "proxy_headers": True,
        # Open streams hold their connections: uvicorn waits this long for them to close. The
        # app ends its running replies (and so their streams) just before (ops/shutdown.py).
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
    }
    if workers > 1:
        # Each worker process builds its own app (and reads the same environment), and its
        # edge protocol reads its limits from the same environment.
        options["http"] = "omnichat.ops.edge:EdgeProtocol"
        uvicorn.run("omnichat.app:create_app", factory=True, workers=workers, **options)
    else:
        options["http"] = edge_protocol(EdgeLimits.from_settings(settings))
        serve(create_app(settings), options)


def _redacted(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnichat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply migrations and run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (above 1 needs OMNICHAT_REDIS_URL)"
    )
    commands.add_parser("migrate", help="apply database migrations and exit")
    commands.add_parser(
        "repair",
        help="give each document's original its own key, or mark it unavailable (serve runs it)",
    )
    commands.add_parser(
        "reindex",
        help="extract, chunk and embed every document again (run with the server stopped)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except (InsecureSecretKeyError, ValueError) as exc:
        sys.exit(f"omnichat: invalid configuration: {exc}")
    configure_logging(settings.log_level)
    if args.command == "migrate":
        asyncio.run(migrate(settings))
        logger.info("migrations applied", extra={"database": _redacted(settings)})
    elif args.command == "repair":
        asyncio.run(migrate(settings))
        repaired = asyncio.run(repair(settings))
        logger.info(
            "repair finished",
            extra={"moved": len(repaired.moved), "original_unavailable": repaired.unavailable},
        )
    elif args.command == "reindex":
        report = asyncio.run(reindex(settings))
        logger.info(
            "index rebuilt",
            extra={"documents": report.total, "kept_stored_chunks": report.kept_chunks},
        )
    elif args.command == "serve":
        _serve(settings, args.host, args.port, args.workers)
