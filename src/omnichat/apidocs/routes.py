"""``/docs`` (Swagger UI), ``/redoc`` (Redoc) and ``/docs/assets/<file>``.

FastAPI's own pages load unpinned scripts from a CDN, and run an inline script, on the origin
where the web UI keeps its tokens. These pages load only files served here: Swagger UI's and
Redoc's builds from the ``fastapi-offline`` wheel (pinned in pyproject.toml) and our start-up
script, under a CSP that refuses scripts, styles, fonts and connections from anywhere else.
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from omnichat.errors import NotFound

VENDORED_DIR = Path(fastapi_offline.__file__).parent / "static"
OWN_DIR = Path(__file__).parent / "static"
ASSETS_PATH = "/docs/assets"
# Only these files are served: no path from the URL reaches the disk.
ASSETS = {
    "swagger-ui-bundle.js": VENDORED_DIR / "swagger-ui-bundle.js",
    "swagger-ui.css": VENDORED_DIR / "swagger-ui.css",
    "redoc.standalone.js": VENDORED_DIR / "redoc.standalone.js",
    "favicon.png": VENDORED_DIR / "favicon.png",
    "swagger-init.js": OWN_DIR / "swagger-init.js",
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


def _content_security_policy(style_src: str, worker_src: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            f"style-src {style_src}",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            f"worker-src {worker_src}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def _headers(content_security_policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy,
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


DOCS_HEADERS = _headers(_content_security_policy("'self'", "'self'"))
# Redoc styles itself with styled-components, whose <style> elements carry no nonce it could be
# given from outside its bundle, and runs its search in a worker made from its own code through a
# blob: URL. On that page alone: inline styles, and workers from blob: (never scripts). Its
# "API docs by Redocly" logo, from Redocly's CDN, stays blocked.
REDOC_HEADERS = _headers(_content_security_policy("'self' 'unsafe-inline'", "'self' blob:"))

router = APIRouter(include_in_schema=False)


def _page(title: str, head: str, body: str, headers: dict[str, str]) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n{head}</head>\n<body>\n{body}</body>\n</html>\n",
        headers=headers,
    )


def _urls(request: Request) -> tuple[str, str]:
    """The schema's URL and the assets' folder, under the app's root path (behind a proxy)."""
    root = html.escape(request.scope.get("root_path", "").rstrip("/"), quote=True)
    return f"{root}{request.app.openapi_url}", f"{root}{ASSETS_PATH}"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    openapi_url, assets = _urls(request)
    return _page(
        f"{request.app.title} - Swagger UI",
        f'<link rel="stylesheet" href="{assets}/swagger-ui.css">\n'
        f'<link rel="icon" type="image/png" href="{assets}/favicon.png">\n',
        f'<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>\n'
        f'<script src="{assets}/swagger-ui-bundle.js"></script>\n'
        f'<script src="{assets}/swagger-init.js"></script>\n',
        DOCS_HEADERS,
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    openapi_url, assets = _urls(request)
    # Redoc's script renders every <redoc spec-url> element itself: no start-up script.
    return _page(
        f"{request.app.title} - ReDoc",
        f'<link rel="icon" type="image/png" href="{assets}/favicon.png">\n',
        f'<redoc spec-url="{openapi_url}"></redoc>\n'
        f'<script src="{assets}/redoc.standalone.js"></script>\n',
        REDOC_HEADERS,
    )


@router.get(ASSETS_PATH + "/{asset}")
async def docs_asset(asset: str) -> FileResponse:
    path = ASSETS.get(asset)
    if path is None:
        raise NotFound("Not found")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=DOCS_HEADERS)
