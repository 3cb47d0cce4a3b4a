"""Helpers for the web UI tests: Debian's Chromium driven by Playwright, a watch on each page for
script errors, CSP violations and dialogs, screenshots, and signing up through the UI."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Playwright,
    async_playwright,
    expect,
)

from tests.conftest import PASSWORD, unique_email

# Playwright's own browser download is not used: scripts/test installs Debian's chromium.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# A shared two-core machine: generous, since expect() returns as soon as the condition holds.
expect.set_options(timeout=20_000)


async def launch(playwright: Playwright) -> Browser:
    assert CHROMIUM, "chromium is not installed (scripts/test installs it with apt-get)"
    return await playwright.chromium.launch(
        executable_path=CHROMIUM,
        # Root in a container: Chromium's own sandbox needs user namespaces it may not have.
        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    )


@dataclass
class PageWatch:
    """What a page did that it must not: uncaught errors, CSP refusals, dialogs (alert etc.)."""

    errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()  # it would block the page; the test fails on it anyway

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.csp_violations == [], self.csp_violations
        assert self.dialogs == [], self.dialogs


def screenshot_dir(basetemp: Path) -> Path:
    """``OMNICHAT_UI_SCREENSHOTS`` if set, else ``screenshots`` in pytest's basetemp."""
    configured = os.environ.get("OMNICHAT_UI_SCREENSHOTS")
    directory = Path(configured) if configured else basetemp / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def sign_up(page: Page, base_url: str, prefix: str = "ui") -> str:
    """Registers a new account through the UI's form; returns the email once the chat shows."""
    email = unique_email(prefix)
    await page.goto(f"{base_url}/")
    await page.get_by_role("button", name="Create an account").click()
    form = page.get_by_role("form", name="Create an account")
    await form.get_by_label("Email").fill(email)
    await form.get_by_label("First name (optional)").fill("Ada")
    await form.get_by_label("Password (at least 8 characters)").fill(PASSWORD)
    await form.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await expect(page.locator("#user-email")).to_have_text(email)
    return email


async def send(page: Page, text: str) -> None:
    """Types into the composer and presses Enter, as a person would."""
    box = page.get_by_role("textbox", name="Message", exact=True)
    await box.fill(text)
    await box.press("Enter")


def last_reply(page: Page) -> Locator:
    return page.locator("article.msg-assistant").last


SESSION_URL = re.compile(r"#/c/[\w-]+$")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the module; every test gets its own context (storage, cookies)."""
    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        yield chromium
        await chromium.close()
