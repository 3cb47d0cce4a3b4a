"""``/docs`` and ``/redoc`` run on the web UI's origin, where the UI keeps its tokens: they load
every script, style and image from the server itself (files that ship in packages), under a CSP
that refuses anything from another origin, and they still work in a real browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import async_playwright, expect

from omnichat.app import create_app
from omnichat.cli import migrate
from tests.browser import DESKTOP, PageWatch, launch
from tests.conftest import ThreadedServer, make_settings

DOC_PAGES = ["/docs", "/redoc"]
# Redoc always shows Redocly's logo from its CDN: the CSP refuses it, which is the point.
REFUSED_ON_PURPOSE = "https://cdn.redoc.ly/"
BASE = "http://testserver"


class ReferenceCollector(HTMLParser):
    """Every URL the page makes the browser fetch, and any script written into the page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("src", "href", "spec-url", "data-openapi-url", "action", "poster"):
            if attributes.get(name):
                self.urls.append(str(attributes[name]))
        if tag == "script" and not attributes.get("src"):
            self.inline_scripts += 1
        assert not any(name.startswith("on") for name in attributes), f"handler on <{tag}>"


def csp_directives(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


@pytest.mark.parametrize("page", DOC_PAGES)
async def test_doc_page_loads_only_files_of_its_own_origin(
    client: httpx.AsyncClient, page: str
) -> None:
    r = await client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    collector = ReferenceCollector()
    collector.feed(r.text)
    assert collector.inline_scripts == 0
    assert any(url.endswith(".js") for url in collector.urls)
    for url in collector.urls:
        absolute = urljoin(f"{BASE}{page}", url)
        assert urlsplit(absolute).netloc == "testserver", f"{page} loads {url} from elsewhere"
        fetched = await client.get(absolute)
        assert fetched.status_code == 200, f"{page}: {url} answers {fetched.status_code}"
        if url.endswith(".js"):
            assert fetched.headers["content-type"].startswith("text/javascript")
        elif url.endswith(".css"):
            assert fetched.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("page", DOC_PAGES)
async def test_doc_page_csp_forbids_other_origins(client: httpx.AsyncClient, page: str) -> None:
    r = await client.get(page)
    directives = csp_directives(r.headers["content-security-policy"])
    assert directives["default-src"] in (["'none'"], ["'self'"])
    assert directives["script-src"] == ["'self'"]
    for name in ("object-src", "base-uri", "frame-ancestors"):
        assert directives[name] == ["'none'"]
    for name, values in directives.items():
        for value in values:
            # Keywords and the page's own kinds of URL only: no host, scheme or wildcard.
            assert value.startswith("'") or value in ("data:", "blob:"), f"{name} {value}"
            assert value not in ("'unsafe-eval'", "'strict-dynamic'"), f"{name} {value}"
        if name in ("script-src", "default-src", "connect-src", "font-src"):
            assert "'unsafe-inline'" not in values
            assert "data:" not in values
    assert r.headers["x-frame-options"] == "DENY"


async def test_doc_assets_are_only_the_packaged_files(client: httpx.AsyncClient) -> None:
    for missing in ("/docs/assets/nope.js", "/docs/assets/..%2Froutes.py", "/docs/assets/core.py"):
        assert (await client.get(missing)).status_code == 404
    assert (await client.get("/docs/oauth2-redirect")).status_code in (404, 405)
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not any(path.startswith(("/docs", "/redoc")) for path in paths)


# -- in a real browser: the pages render under their CSP ------------------------------------------


@pytest.fixture(scope="module")
async def docs_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ThreadedServer]:
    """Once, whatever the backends: the pages need no database, only the app's start-up does,
    so it gets a SQLite file of its own."""
    data_dir = tmp_path_factory.mktemp("docs")
    settings = make_settings(f"sqlite+aiosqlite:///{data_dir / 'docs.db'}", data_dir)
    await migrate(settings)
    with ThreadedServer(create_app(settings)) as server:
        yield server


@pytest.mark.parametrize(
    ("page", "shown"),
    [("/docs", "#operations-tag-generation"), ("/redoc", 'h1:has-text("OmniChat")')],
)
async def test_doc_page_renders_in_a_browser_without_csp_violations(
    docs_server: ThreadedServer, page: str, shown: str
) -> None:
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            context = await browser.new_context(viewport=DESKTOP)
            tab = await context.new_page()
            watch = PageWatch()
            watch.attach(tab)
            answered_elsewhere: list[str] = []  # a refused request gets no response
            tab.on(
                "response",
                lambda response: (
                    None
                    if response.url.startswith((docs_server.base_url, "data:", "blob:"))
                    else answered_elsewhere.append(response.url)
                ),
            )
            await tab.goto(f"{docs_server.base_url}{page}")
            await expect(tab.locator(shown).first).to_be_visible()
            await tab.wait_for_load_state("networkidle")
            watch.csp_violations = [v for v in watch.csp_violations if REFUSED_ON_PURPOSE not in v]
            watch.assert_clean()
            assert answered_elsewhere == []
        finally:
            await browser.close()
