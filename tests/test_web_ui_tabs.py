"""Two tabs of the web UI sharing one login (two pages of one browser context: one localStorage),
with and without Web Locks (``navigator.locks`` is missing wherever the page is not a secure
context, e.g. plain http on a LAN address). Access tokens live a few seconds here, so the UI's
scheduled refresh comes every few seconds: one tab refreshes, the other takes its tokens, and no
refresh token is ever presented twice (the server revokes the whole login when one is)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import pytest
from playwright.async_api import Browser, Page, Request, expect

from omnichat.app import create_app
from omnichat.settings import Settings
from tests.browser import DESKTOP, PageWatch, browser, sign_up
from tests.conftest import ThreadedServer

__all__ = ["browser"]  # a fixture, imported to be used here

ACCESS_TOKEN_S = 6  # the UI refreshes halfway through: every 3 s
REFRESHES = 3


@pytest.fixture(scope="module")
def short_token_server(llm_settings: Settings) -> Iterator[ThreadedServer]:
    # The setting is whole minutes when read from the environment; a fraction is set directly.
    # No reuse leeway: the tabs must not lean on the server forgiving a refresh token used twice.
    short_lived = llm_settings.model_copy(
        update={"access_token_minutes": ACCESS_TOKEN_S / 60, "refresh_reuse_leeway_s": 0.0}
    )
    with ThreadedServer(create_app(short_lived)) as server:
        yield server


@dataclass
class RefreshCall:
    at: float
    refresh_token: str
    status: int | None = None


@pytest.mark.parametrize("web_locks", [True, False], ids=["web-locks", "no-web-locks"])
async def test_two_tabs_of_one_login_stay_signed_in_across_scheduled_refreshes(
    browser: Browser, short_token_server: ThreadedServer, web_locks: bool
) -> None:
    base_url = short_token_server.base_url
    context = await browser.new_context(viewport=DESKTOP)
    if not web_locks:
        await context.add_init_script("delete Navigator.prototype.locks;")
    refreshes: list[RefreshCall] = []
    by_request: dict[Request, RefreshCall] = {}

    def on_request(request: Request) -> None:
        if request.url == f"{base_url}/auth/refresh":
            call = RefreshCall(time.monotonic(), request.post_data_json["refresh_token"])
            refreshes.append(call)
            by_request[request] = call

    async def on_request_finished(request: Request) -> None:
        if request in by_request:
            response = await request.response()
            by_request[request].status = response.status if response else None

    context.on("request", on_request)
    context.on("requestfinished", on_request_finished)
    watch = PageWatch()
    tabs: list[Page] = []
    try:
        for _ in range(2):
            tab = await context.new_page()
            watch.attach(tab)
            tabs.append(tab)
        email = await sign_up(tabs[0], base_url, "tabs")
        await tabs[1].goto(f"{base_url}/")
        await expect(tabs[1].locator("#user-email")).to_have_text(email)
        for tab in tabs:
            assert await tab.evaluate("navigator.locks !== undefined") is web_locks

        deadline = time.monotonic() + 20 * ACCESS_TOKEN_S
        while sum(call.status == 200 for call in refreshes) < REFRESHES:
            assert time.monotonic() < deadline, refreshes
            assert all(call.status in (None, 200) for call in refreshes), refreshes
            await tabs[0].wait_for_timeout(200)
        await tabs[0].wait_for_timeout(ACCESS_TOKEN_S * 1000 / 4)  # a second tab's late refresh

        # One refresh per scheduled time, by one tab, each with a refresh token never sent before.
        posted = [call.refresh_token for call in refreshes]
        assert len(set(posted)) == len(posted), "a refresh token was presented twice"
        gaps = [later.at - earlier.at for earlier, later in pairwise(refreshes)]
        assert all(gap > ACCESS_TOKEN_S / 4 for gap in gaps), f"both tabs refreshed: {gaps}"
        assert all(call.status == 200 for call in refreshes), refreshes

        # Both tabs are still signed in and can use the API with the login's current tokens.
        for tab in tabs:
            await expect(tab.get_by_role("button", name="Sign out")).to_be_visible()
            me = await tab.evaluate("async () => (await import('/ui/api.js')).api('/auth/me')")
            assert me["email"] == email
        assert await tabs[1].evaluate("localStorage.getItem('omnichat.auth')") is not None
        watch.assert_clean()
    finally:
        await context.close()
