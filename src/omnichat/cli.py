"""``omnichat serve``, ``omnichat migrate``, ``omnichat repair`` and ``omnichat reindex``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from omnichat.db.engine import create_engine_from_url
from omnichat.db.migrate import upgrade_to_head
from omnichat.ops.backends import (
    BackendStatus,
    backend_checks,
    failure_reason,
    run_checks,
    settings_secrets,
)
from omnichat.ops.middleware import configure_logging
from omnichat.ops.urls import masked_url
from omnichat.settings import ConfigurationError, InsecureSecretKeyError, Settings

if TYPE_CHECKING:
    from omnichat.documents.reindex import ReindexReport
    from omnichat.documents.repair import RepairReport

logger = logging.getLogger("omnichat.cli")
DATABASE_CONNECT_TIMEOUT_S = 10.0


async def _reach(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def database_location(settings: Settings) -> str:
    """host:port of a server database, the file of a SQLite one."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return f"{url.host or 'localhost'}:{url.port or 5432}"


class CommandFailed(Exception):
    """A command cannot go on, for a reason one line says (no traceback unless --debug)."""


async def migrate(settings: Settings) -> None:
    """Applies the migrations. ``CommandFailed`` naming the database (secrets masked) when it
    cannot be reached."""
    engine = create_engine_from_url(settings.resolved_database_url)
    try:
        try:
            await asyncio.wait_for(_reach(engine), DATABASE_CONNECT_TIMEOUT_S)
        except Exception as exc:
            raise CommandFailed(
                f"cannot reach the database at {database_location(settings)}: {failure_reason(exc)}"
            ) from exc
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
    logger.info(
        "migrations applied", extra={"database": masked_url(settings.resolved_database_url)}
    )
    asyncio.run(repair(settings))
    asyncio.run(_warn_about_backends(settings))
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


async def _run_configured_checks(
    settings: Settings, *, skip: frozenset[str] = frozenset()
) -> list[BackendStatus]:
    """The checks of every backend the settings configure (but those named in ``skip``), run
    with a database of their own and every configured password masked."""
    from omnichat.blobs.factory import build_blob_store
    from omnichat.db.engine import create_database
    from omnichat.rag.vectors.factory import build_vector_store

    database = create_database(settings)
    try:
        checks = backend_checks(
            settings, database, build_blob_store(settings), build_vector_store(settings, database)
        )
        return await run_checks(
            [c for c in checks if c.name not in skip], secrets=settings_secrets(settings)
        )
    finally:
        await database.dispose()


async def check(settings: Settings) -> bool:
    """``omnichat check``: the configuration as ``serve`` reads it (the providers file, the
    default and fallback models: ``CommandFailed`` naming what is wrong), then every backend
    reached, a table printed; True when all answer."""
    from omnichat.errors import AppError
    from omnichat.llm.registry import build_registry

    try:
        build_registry(settings)
    except (ValueError, AppError) as exc:
        raise CommandFailed(f"invalid configuration: {exc}") from None
    statuses = await _run_configured_checks(settings)
    rows = [("backend", "target", "status", "why")] + [
        (s.name, s.target, "ok" if s.ok else "failed", s.reason or "") for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]))
    return all(status.ok for status in statuses)


async def _warn_about_backends(settings: Settings) -> None:
    """Start-up: one line for each backend besides the database that does not answer (the
    server starts all the same, ``/readyz`` 503 until it does)."""
    for status in await _run_configured_checks(settings, skip=frozenset({"database"})):
        if not status.ok:
            logger.warning(
                f"{status.name} at {status.target} does not answer: {status.reason}",
                extra={"backend": status.name},
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnichat", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="on failure, print the traceback too")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", parents=[common], help="apply migrations and run the HTTP server"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (above 1 needs OMNICHAT_REDIS_URL)"
    )
    commands.add_parser("migrate", parents=[common], help="apply database migrations and exit")
    commands.add_parser(
        "repair",
        parents=[common],
        help="give each document's original its own key, or mark it unavailable (serve runs it)",
    )
    commands.add_parser(
        "reindex",
        parents=[common],
        help="extract, chunk and embed every document again (run with the server stopped)",
    )
    commands.add_parser(
        "check",
        parents=[common],
        help="validate the configuration, reach every backend, print a table; exit 0 or 1",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"omnichat: invalid configuration: {problem}", file=sys.stderr)
        sys.exit(1)
    except (InsecureSecretKeyError, ValueError) as exc:
        sys.exit(f"omnichat: invalid configuration: {exc}")
    configure_logging(settings.log_level)
    try:
        _run(args, settings)
    except CommandFailed as exc:
        if args.debug:
            raise
        sys.exit(f"omnichat: {exc}")
    except Exception as exc:
        if args.debug:
            raise
        sys.exit(
            f"omnichat: {args.command} failed: {failure_reason(exc)} "
            "(run with --debug for the traceback)"
        )


def _run(args: argparse.Namespace, settings: Settings) -> None:
    if args.command == "check":
        sys.exit(0 if asyncio.run(check(settings)) else 1)
    elif args.command == "migrate":
        asyncio.run(migrate(settings))
        logger.info(
            "migrations applied", extra={"database": masked_url(settings.resolved_database_url)}
        )
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
