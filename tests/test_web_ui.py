"""The web UI in a real browser (Debian's Chromium, headless, through Playwright) against the real
app under uvicorn on loopback, with the fake OpenAI-format providers behind it: a person's path
through every feature, safe rendering of hostile replies, tokens that expire or are revoked, and
phone width. Screenshots of the main screens land in the directory printed at the end.

The browser tests run on SQLite only (the UI is a client of the HTTP API, which the rest of the
suite covers on both backends); the header checks run on both."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from omnichat.app import create_app
from omnichat.settings import Settings
from tests.browser import (
    DESKTOP,
    PHONE,
    SESSION_URL,
    PageWatch,
    browser,
    last_reply,
    screenshot_dir,
    send,
    sign_up,
)
from tests.conftest import PASSWORD, ThreadedServer, age_rotation
from tests.docs_factory import make_pdf
from tests.fakes import CutAfter, FakeProviderServer, Reply

__all__ = ["browser"]  # a fixture, imported to be used here

FACT_PAGES = [
    "Annual report of the Zorblax Company. Nothing unusual happened this year.",
    "The Zorblax reactor is cooled with peppermint tea, brewed at 71 degrees.",
]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shots(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    directory = screenshot_dir(tmp_path_factory.getbasetemp())
    yield directory
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(f"\nweb UI screenshots: {directory}")
        return
    with capture.global_and_fixture_disabled():
        print(f"\nweb UI screenshots: {directory}")


@pytest.fixture
async def ui(
    browser: Browser, llm_server: ThreadedServer, fake_provider: FakeProviderServer
) -> AsyncIterator[tuple[Page, PageWatch]]:
    context: BrowserContext = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    watch = PageWatch()
    watch.attach(page)
    yield page, watch
    await context.close()
    watch.assert_clean()


# -- headers (no browser) ----------------------------------------------------------------------


async def test_ui_is_served_with_a_strict_csp_and_api_headers_are_unchanged(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert '<script type="module" src="/ui/app.js"></script>' in r.text
    assert "<script>" not in r.text  # no inline script at all
    assert " style=" not in r.text  # nor inline styles

    for name, media_type in (("app.js", "text/javascript"), ("styles.css", "text/css")):
        asset = await client.get(f"/ui/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(media_type)
        assert asset.headers["content-security-policy"] == csp
    for missing in ("/ui/nope.js", "/ui/..%2Froutes.py", "/ui/__init__.py"):
        assert (await client.get(missing)).status_code == 404

    api = await client.get("/healthz")
    assert "content-security-policy" not in api.headers
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not any(path.startswith("/ui/") for path in paths)


async def test_the_ui_can_be_turned_off(settings: Settings) -> None:
    """``OMNICHAT_WEB_UI=false``: no page, no assets (routing alone answers; no lifespan needed)."""
    for enabled, status in ((True, 200), (False, 404)):
        application = create_app(settings.model_copy(update={"web_ui": enabled}))
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.get("/")).status_code == status
            assert (await c.get("/ui/app.js")).status_code == status


# -- in the browser ----------------------------------------------------------------------------


async def test_chat_flow_stream_reload_stop_regenerate(
    ui: tuple[Page, PageWatch],
    llm_server: ThreadedServer,
    fake_provider: FakeProviderServer,
    shots: Path,
) -> None:
    page, _ = ui
    await page.goto(f"{llm_server.base_url}/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.screenshot(path=shots / "login.png", animations="disabled")
    await sign_up(page, llm_server.base_url, "flow")
    # Every control, shown or not yet, has an accessible name.
    unnamed = await page.evaluate(
        """() => [...document.querySelectorAll("button, input, select, textarea")].filter(
            (el) => !(el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") ||
                      (el.labels && el.labels.length) || el.textContent.trim())
        ).map((el) => el.outerHTML)"""
    )
    assert unnamed == []
    await expect(page.locator("#offline-banner")).to_be_hidden()  # real providers are configured
    picker = page.get_by_role("combobox", name="Model")
    await expect(picker.locator("option", has_text="anthropic:claude-haiku-5-5")).to_have_count(1)
    await picker.select_option("openai:gpt-5.4-mini")

    # Shift+Enter is a new line, not a send.
    box = page.get_by_role("textbox", name="Message", exact=True)
    await box.fill("first line")
    await box.press("Shift+Enter")
    await box.press_sequentially("second line")
    await expect(box).to_have_value("first line\nsecond line")
    await expect(page.locator("article.msg")).to_have_count(0)

    # Every rendering of the streaming reply is recorded, to see it grow token by token.
    await page.evaluate(
        """() => {
        window.__seen = [];
        new MutationObserver(() => {
          const body = document.querySelector("article.msg-assistant:last-of-type .msg-body");
          if (body) window.__seen.push(body.textContent);
        }).observe(document.querySelector("#messages"),
                   {subtree: true, childList: true, characterData: true});
        }"""
    )
    tokens = ["Tokens ", "arrive ", "one ", "at ", "a ", "time."]
    fake_provider.script(Reply(tokens=tokens, interval_s=0.25))
    await box.press("Enter")
    reply = last_reply(page)
    await expect(reply).to_have_attribute("data-status", "streaming")
    await expect(page.get_by_role("button", name="Stop")).to_be_visible()
    await expect(reply.locator(".msg-body")).to_have_text("Tokens arrive one at a time.")
    await expect(reply).to_have_attribute("data-status", "complete")
    seen = await page.evaluate("window.__seen")
    partial = {text for text in seen if text and text != "Tokens arrive one at a time."}
    assert {"Tokens ", "Tokens arrive one "} & partial or len(partial) >= 3, seen
    assert fake_provider.requests_for("openai")[-1].body["stream"] is True

    # The new chat is in the sidebar, titled from its first message, and in the URL.
    sidebar = page.get_by_role("navigation", name="Chat sessions")
    await expect(
        sidebar.get_by_role("button", name="first line second line", exact=True)
    ).to_be_visible()
    await expect(page).to_have_url(SESSION_URL)
    await page.screenshot(path=shots / "chat.png", animations="disabled")

    # Reload: the same chat, from the server.
    await page.reload()
    await expect(page.locator("article.msg-user .msg-body")).to_have_text("first line\nsecond line")
    await expect(last_reply(page).locator(".msg-body")).to_have_text("Tokens arrive one at a time.")

    # A reload mid-reply re-attaches to it (GET /chat/stream/{id}) and it goes on growing.
    fake_provider.script(Reply(tokens=["word "] * 400, interval_s=0.05))
    await send(page, "Tell me a long story")
    await expect(last_reply(page).locator(".msg-body")).to_contain_text("word " * 3)
    await page.reload()
    reply = last_reply(page)
    await expect(reply).to_have_attribute("data-status", "streaming")
    before = ((await reply.locator(".msg-body").text_content()) or "").count("word")
    await expect(reply.locator(".msg-body")).to_contain_text("word " * (before + 5))

    # Stop mid-stream: the reply is kept as far as it got, marked stopped, also after a reload.
    await page.get_by_role("button", name="Stop").click()
    await expect(reply).to_have_attribute("data-status", "stopped")
    await expect(reply.locator(".msg-note")).to_have_text("Stopped.")
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    stopped_text = (await reply.locator(".msg-body").text_content()) or ""
    assert 0 < stopped_text.count("word") < 400
    await page.reload()
    await expect(last_reply(page)).to_have_attribute("data-status", "stopped")
    await expect(page.locator("article.msg")).to_have_count(4)

    # Regenerate sends the last prompt again; the fake echoes it.
    await page.get_by_role("button", name="Regenerate").click()
    await expect(page.locator("article.msg")).to_have_count(6)
    await expect(last_reply(page)).to_have_attribute("data-status", "complete")
    await expect(last_reply(page).locator(".msg-body")).to_have_text("Echo: Tell me a long story")


async def test_sessions_rename_search_delete_and_sign_out(
    ui: tuple[Page, PageWatch], llm_server: ThreadedServer
) -> None:
    page, _ = ui
    email = await sign_up(page, llm_server.base_url, "sidebar")
    for prompt in ("Alpha question", "Beta question"):
        await page.get_by_role("button", name="New chat").click()
        await send(page, prompt)
        await expect(last_reply(page)).to_have_attribute("data-status", "complete")
    sidebar = page.get_by_role("navigation", name="Chat sessions")
    sessions = sidebar.locator(".session-open")
    await expect(sessions).to_have_text(["Beta question", "Alpha question"])  # newest first

    await sidebar.get_by_role("button", name="Rename chat “Alpha question”").click()
    title = sidebar.get_by_role("textbox", name="New title for chat “Alpha question”")
    await title.fill("Renamed <b>plans</b>")
    await title.press("Enter")
    await expect(sessions).to_have_text(["Beta question", "Renamed <b>plans</b>"])

    search = page.get_by_role("searchbox", name="Search chats by title")
    await search.fill("renamed")
    await expect(sessions).to_have_text(["Renamed <b>plans</b>"])
    await search.fill("nothing like this")
    await expect(sessions).to_have_count(0)
    await expect(page.get_by_text("No chat matches that title.")).to_be_visible()
    await search.fill("")

    # Deleting asks first; Cancel keeps the chat.
    delete = sidebar.get_by_role("button", name="Delete chat “Beta question”")
    await delete.click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Delete the chat “Beta question”")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(sessions).to_have_count(2)
    await delete.click()
    await dialog.get_by_role("button", name="Delete chat").click()
    await expect(sessions).to_have_text(["Renamed <b>plans</b>"])

    # Sign out, then back in with the same account.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You have signed out.")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('omnichat.auth')") is None
    login = page.get_by_role("form", name="Sign in")
    await login.get_by_label("Email").fill(email)
    await login.get_by_label("Password").fill("not the password at all")
    await login.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Incorrect email or password")
    await login.get_by_label("Password").fill(PASSWORD)
    await login.get_by_role("button", name="Sign in").click()
    await expect(sessions).to_have_text(["Renamed <b>plans</b>"])


async def test_documents_upload_grounded_answer_citation_and_delete(
    ui: tuple[Page, PageWatch],
    llm_server: ThreadedServer,
    fake_provider: FakeProviderServer,
    shots: Path,
    tmp_path: Path,
) -> None:
    page, _ = ui
    await sign_up(page, llm_server.base_url, "docs")
    pdf = tmp_path / "zorblax.pdf"
    pdf.write_bytes(make_pdf(FACT_PAGES))

    await page.get_by_role("button", name="Documents").click()
    panel = page.get_by_role("complementary", name="Documents")
    await expect(panel).to_be_visible()
    await expect(panel.get_by_text("No documents yet.")).to_be_visible()
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if "/upload/document" in r.url else None)
    await page.evaluate(
        """() => {
        window.__progress = [];
        const bar = document.querySelector("#upload-progress");
        new MutationObserver(() => window.__progress.push(bar.value))
          .observe(bar, {attributes: true, attributeFilter: ["value"]});
        }"""
    )
    await panel.get_by_label("Upload a document").set_input_files(pdf)
    entry = panel.locator("li.doc", has_text="zorblax.pdf")
    await expect(entry.locator(".doc-state")).to_have_text("Ready · 2 pages", timeout=90_000)
    assert uploads
    assert uploads[0].endswith("/upload/document?background=true")
    assert 100 in await page.evaluate("window.__progress")  # upload.onprogress reached the bar
    await expect(page.get_by_label("Upload progress")).to_be_hidden()
    await expect(panel.get_by_role("status")).to_have_text("zorblax.pdf is ready.")
    await page.screenshot(path=shots / "documents.png", animations="disabled")
    await panel.get_by_role("button", name="Close documents").click()
    await expect(panel).to_be_hidden()

    await page.get_by_label("Use my documents").check()
    fake_provider.script(Reply("It is cooled with peppermint tea [1]."))
    await send(page, "How is the Zorblax reactor cooled?")
    reply = last_reply(page)
    await expect(reply).to_have_attribute("data-status", "complete")
    await expect(reply.locator(".msg-body")).to_have_text("It is cooled with peppermint tea [1].")
    source = reply.get_by_role("button", name="Open source 1: zorblax.pdf, page 2")
    await expect(source).to_be_visible()
    await expect(reply.locator(".snippet").first).to_contain_text("peppermint tea")
    sent = fake_provider.requests_for("openai")[-1].body["messages"][-1]["content"]
    assert sent.startswith("<sources-")  # rag: true reached the server

    # The source opens the original at its page, fetched with the token (a blob: URL).
    async with page.context.expect_page() as opened:
        await reply.get_by_role("button", name="Source 1: zorblax.pdf, page 2", exact=True).click()
    tab = await opened.value
    await tab.wait_for_url(re.compile(r"^blob:http://127\.0\.0\.1:\d+/[\w-]+#page=2$"))
    await tab.close()

    # Sources are stored with the reply.
    await page.reload()
    await expect(
        last_reply(page).get_by_role("button", name=re.compile("^Open source 1"))
    ).to_be_visible()

    await page.get_by_role("button", name="Documents").click()
    await entry.get_by_role("button", name="Delete zorblax.pdf").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete document").click()
    await expect(entry).to_have_count(0)
    await expect(panel.get_by_text("No documents yet.")).to_be_visible()


XSS_REPLY = "\n".join(
    [
        "# Heading",
        "Some **bold**, *italic*, `inline code` and ~~gone~~ text.",
        "",
        "- item one",
        "- item two",
        "",
        "1. first",
        "2. second",
        "",
        "> quoted",
        "",
        "```python",
        "print('<b>not bold</b>')",
        "```",
        "",
        "[safe link](https://example.com/page) and <https://example.org>",
        "<script>window.__xss = 1</script>",
        '<img src=x onerror="window.__xss = 2">',
        "[click me](javascript:window.__xss=3) [tab](java\tscript:window.__xss=4)",
        "[data](data:text/html,<script>window.__xss=5</script>) ![pic](x onerror=alert(1))",
        '<a href="javascript:window.__xss=6">raw anchor</a> <svg onload="window.__xss=7">',
    ]
)


async def test_markdown_renders_and_hostile_markup_stays_text(
    browser: Browser,
    llm_server: ThreadedServer,
    fake_provider: FakeProviderServer,
) -> None:
    # The CSP is bypassed here so that the renderer itself is what is tested: even without the
    # CSP's protection no script, handler or javascript: link may run.
    context = await browser.new_context(viewport=DESKTOP, bypass_csp=True)
    page = await context.new_page()
    watch = PageWatch()
    watch.attach(page)
    try:
        await sign_up(page, llm_server.base_url, "xss")
        fake_provider.script(Reply(XSS_REPLY))
        await send(page, '<img src=x onerror="window.__xss = 8"> <script>window.__xss=9</script>')
        reply = last_reply(page)
        await expect(reply).to_have_attribute("data-status", "complete")
        for reload in (False, True):
            if reload:
                await page.reload()
                reply = last_reply(page)
            body = reply.locator(".msg-body")
            await expect(body.locator("h3")).to_have_text("Heading")
            await expect(body.locator("strong")).to_have_text("bold")
            await expect(body.locator("em")).to_have_text("italic")
            await expect(body.locator("del")).to_have_text("gone")
            await expect(body.locator("ul > li")).to_have_text(["item one", "item two"])
            await expect(body.locator("ol > li")).to_have_text(["first", "second"])
            await expect(body.locator("blockquote")).to_have_text("quoted")
            await expect(body.locator("pre code")).to_have_text("print('<b>not bold</b>')")
            links = body.locator("a")
            await expect(links).to_have_count(2)
            await expect(links.first).to_have_attribute("href", "https://example.com/page")
            await expect(links.first).to_have_attribute("rel", "noopener noreferrer nofollow")
            await expect(links.nth(1)).to_have_attribute("href", "https://example.org/")
            await expect(body).to_contain_text("<script>window.__xss = 1</script>")
            await expect(body).to_contain_text("[click me](javascript:window.__xss=3)")
            await expect(body).to_contain_text('<svg onload="window.__xss=7">')
            await expect(page.locator("article.msg-user .msg-body")).to_contain_text(
                '<img src=x onerror="window.__xss = 8">'
            )
            messages = page.locator("#messages")
            for tag in ("script", "img", "svg", "iframe", "object", "embed", "b"):
                await expect(messages.locator(tag)).to_have_count(0)
            handlers = await page.evaluate(
                """() => [...document.querySelectorAll('#messages *')].flatMap(
                    (el) => [...el.attributes].map((a) => a.name)
                ).filter((name) => name.startsWith('on'))"""
            )
            assert handlers == []
            await links.first.hover()  # nothing fires on interaction either
            assert await page.evaluate("typeof window.__xss") == "undefined"
        watch.assert_clean()
    finally:
        await context.close()


RENDERED = {
    "**a** *b* `c<d>` ~~e~~": (
        "<p><strong>a</strong> <em>b</em> <code>c&lt;d&gt;</code> <del>e</del></p>"
    ),
    "- a\n  - b\n- c": "<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>",
    "3. three\n4. four": '<ol start="3"><li>three</li><li>four</li></ol>',
    "# Title\n\ntext\n***\nmore": "<h3>Title</h3><p>text</p><hr><p>more</p>",
    "> quote\n> **b**": "<blockquote><p>quote<br><strong>b</strong></p></blockquote>",
    "\\*not em\\* snake_case_name": "<p>*not em* snake_case_name</p>",
    "[x](https://e.com/a_(b))": '<p><a href="https://e.com/a_(b)">x</a></p>',
    "[x](mailto:a@b.c)": '<p><a href="mailto:a@b.c">x</a></p>',
    "<https://x.org> https://x.org/p.": (
        '<p><a href="https://x.org/">https://x.org</a> <a href="https://x.org/p">https://x.org/p</a>.</p>'
    ),
    "![alt](https://img.example/x.png)": '<p><a href="https://img.example/x.png">alt</a></p>',
    "see [1] and [2]": "<p>see <button>[1]</button> and [2]</p>",
    # Anything but http:, https: and mailto: (or relative) stays the text it was written as.
    "[x](JaVaScRiPt:alert(1))": "<p>[x](JaVaScRiPt:alert(1))</p>",
    "[x]( javascript:alert(1))": "<p>[x]( javascript:alert(1))</p>",
    "[x](/relative) [y](vbscript:msgbox)": "<p>[x](/relative) [y](vbscript:msgbox)</p>",
    "[z](&#106;avascript:alert(1))": "<p>[z](&amp;#106;avascript:alert(1))</p>",
    "[d](data:text/html;base64,PHNjcmlwdD4=)": "<p>[d](data:text/html;base64,PHNjcmlwdD4=)</p>",
}
# Inputs that would recurse or backtrack without bounds in a naive renderer.
PATHOLOGICAL = [
    "> " * 300 + "x",
    "*" * 20000 + "a",
    "*a " * 20000,
    "_a " * 5000,
    "[" * 20000,
    "[a](" * 10000,
    "`" * 5000 + "x",
    "- " * 2000 + "x",
]


async def test_markdown_renderer_output_and_bounds(
    browser: Browser, llm_server: ThreadedServer
) -> None:
    """The renderer module itself, loaded in the UI's page (its origin and CSP)."""
    page = await browser.new_page()
    watch = PageWatch()
    watch.attach(page)
    try:
        await page.goto(f"{llm_server.base_url}/")
        rendered = await page.evaluate(
            """async (cases) => {
            const { renderMarkdown } = await import("/ui/markdown.js");
            const citation = (n) => {
              if (n !== 1) return null;
              const button = document.createElement("button");
              button.textContent = `[${n}]`;
              return button;
            };
            return cases.map((text) => {
              const box = document.createElement("div");
              box.append(renderMarkdown(text, { citation }));
              return box.innerHTML.replace(/ (target|rel)="[^"]*"/g, "");
            });
            }""",
            list(RENDERED),
        )
        assert dict(zip(RENDERED, rendered, strict=True)) == RENDERED
        lengths = await page.evaluate(
            """async (inputs) => {
            const { renderMarkdown } = await import("/ui/markdown.js");
            return inputs.map((text) => {
              const box = document.createElement("div");
              box.append(renderMarkdown(text));
              return box.textContent.trim().length;
            });
            }""",
            PATHOLOGICAL,
        )
        # Rendered (no stack overflow, no runaway backtracking), with their text kept.
        assert all(length > 0 for length in lengths), lengths
        watch.assert_clean()
    finally:
        await page.close()


async def test_provider_failure_and_rate_limit_are_explained(
    ui: tuple[Page, PageWatch], llm_server: ThreadedServer, fake_provider: FakeProviderServer
) -> None:
    page, _ = ui
    await sign_up(page, llm_server.base_url, "faults")
    await page.get_by_role("combobox", name="Model").select_option("anthropic:claude-sonnet-5-5")
    fake_provider.script(CutAfter(2, tokens=["Half ", "an ", "answer"]))
    await send(page, "Will this work?")
    reply = last_reply(page)
    await expect(reply).to_have_attribute("data-status", "error")
    await expect(reply.locator(".msg-body")).to_have_text("Half an")
    await expect(reply.locator(".msg-note")).to_contain_text("The reply failed:")
    await expect(reply.locator(".msg-note")).to_contain_text("provider")

    # The server's limit is set high for the test suite, so the 429 is the browser's own.
    async def rate_limited(route) -> None:  # type: ignore[no-untyped-def]
        await route.fulfill(
            status=429,
            headers={"Retry-After": "7", "Content-Type": "application/json"},
            body=json.dumps({"detail": "Rate limit exceeded"}),
        )

    await page.route("**/chat/stream", rate_limited)
    await send(page, "Again, please")
    await expect(page.get_by_role("alert")).to_have_text(
        "Too many requests: Rate limit exceeded. Try again in 7 s."
    )
    box = page.get_by_role("textbox", name="Message", exact=True)
    await expect(box).to_have_value("Again, please")  # given back to send later
    await expect(page.locator("article.msg")).to_have_count(2)

    # A server with no provider key offers only the offline model: a banner says so.
    await expect(page.locator("#offline-banner")).to_be_hidden()
    offline = {
        "models": [{"id": "local:echo", "provider": "local", "model": "echo", "default": True}],
        "default": "local:echo",
        "offline": True,
    }
    await page.route("**/models", lambda route: route.fulfill(json=offline))
    await page.reload()
    await expect(page.get_by_text("Only the offline model is available")).to_be_visible()
    await expect(page.get_by_role("combobox", name="Model")).to_have_value("local:echo")


async def test_tokens_refresh_transparently_and_a_revoked_login_signs_out(
    ui: tuple[Page, PageWatch], llm_server: ThreadedServer, llm_settings: Settings
) -> None:
    page, _ = ui
    await sign_up(page, llm_server.base_url, "tokens")

    async def stored() -> dict[str, object]:
        return json.loads(await page.evaluate("localStorage.getItem('omnichat.auth')"))

    async def tamper(**changes: object) -> None:
        await page.evaluate(
            "(changes) => { const t = JSON.parse(localStorage.getItem('omnichat.auth'));"
            " localStorage.setItem('omnichat.auth', JSON.stringify({...t, ...changes})); }",
            changes,
        )

    # About to expire: refreshed before the first call.
    first = await stored()
    await tamper(expires_at=0)
    await page.reload()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    second = await stored()
    assert second["refresh_token"] != first["refresh_token"]

    # Refused (401): refreshed and retried once, invisibly.
    await tamper(access_token="not-a-valid-token")
    await page.reload()
    await expect(page.locator("#user-email")).not_to_be_empty()
    third = await stored()
    assert third["access_token"] != "not-a-valid-token"
    assert third["refresh_token"] != second["refresh_token"]

    # Someone else presents the refresh token first: the UI's next refresh is a reuse, the
    # login is revoked, and the user is sent to sign in again with a clear message.
    async with httpx.AsyncClient(base_url=llm_server.base_url) as client:
        r = await client.post("/auth/refresh", json={"refresh_token": third["refresh_token"]})
        assert r.status_code == 200
    # ... longer ago than the reuse leeway (which forgives a retry or a second tab).
    await age_rotation(llm_settings, str(third["refresh_token"]))
    await tamper(access_token="not-a-valid-token")
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text("Your session has ended")
    assert await page.evaluate("localStorage.getItem('omnichat.auth')") is None


async def test_phone_width_collapses_the_sidebar(
    browser: Browser, llm_server: ThreadedServer, fake_provider: FakeProviderServer, shots: Path
) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    watch = PageWatch()
    watch.attach(page)
    try:
        await sign_up(page, llm_server.base_url, "phone")
        await send(page, "Hello from a phone")
        await expect(last_reply(page)).to_have_attribute("data-status", "complete")
        sidebar = page.get_by_role("complementary", name="Chats")
        await expect(sidebar).to_be_hidden()
        toggle = page.get_by_role("button", name="Show the chat list")
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        await page.screenshot(path=shots / "phone-chat.png", animations="disabled")
        await toggle.click()
        await expect(sidebar).to_be_visible()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        await expect(
            sidebar.get_by_role("button", name="Hello from a phone", exact=True)
        ).to_be_visible()
        await page.screenshot(path=shots / "phone-sidebar.png", animations="disabled")
        await page.keyboard.press("Escape")
        await expect(sidebar).to_be_hidden()
        watch.assert_clean()
    finally:
        await context.close()
