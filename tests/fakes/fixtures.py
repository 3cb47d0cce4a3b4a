"""Pytest fixtures for the fake providers.

Use them from a test module with `pytest_plugins = ["tests.fakes.fixtures"]` (or the same line
in the root tests/conftest.py to make them available everywhere).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.server import FakeProviderServer


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProviderServer]:
    """One fake server for the whole session, in a background thread on a free loopback port."""
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def fake_provider(fake_provider_server: FakeProviderServer) -> Iterator[FakeProviderServer]:
    """The session's fake server with an empty script and request log for this test."""
    fake_provider_server.reset()
    yield fake_provider_server
    fake_provider_server.reset()
