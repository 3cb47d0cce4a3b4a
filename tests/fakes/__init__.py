"""Fake LLM provider servers speaking the real OpenAI, Anthropic, Gemini and Cohere wire formats.

    from tests.fakes import FakeProviderServer, Reply, Fail, CutAfter, Hang, HangAfter

    with FakeProviderServer() as server:
        server.script(Fail(429, retry_after=2), Reply("Hello there"))
        ...  # point an official SDK at server.base_url_for("openai") etc.

`PromptBlocked` scripts Gemini's blocked prompt. Fixtures (tests/fakes/fixtures.py):
`fake_provider_server` (session) and `fake_provider` (function: the same server, reset before
and after each test).
"""

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
from tests.fakes.openai_format import fake_embedding
from tests.fakes.server import FakeProviderServer, RecordedRequest

__all__ = [
    "Behaviour",
    "CutAfter",
    "Fail",
    "FakeProviderServer",
    "Hang",
    "HangAfter",
    "PromptBlocked",
    "RecordedRequest",
    "Reply",
    "ToolCalls",
    "fake_embedding",
]
