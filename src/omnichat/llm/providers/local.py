"""The built-in offline model: answers without any provider, and says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from omnichat.llm.types import Completion, GenerationRequest, StreamEnd, StreamEvent, TextDelta

LOCAL_PROVIDER = "local"
ECHO_MODEL = "echo"
NOTICE = (
    "No LLM provider is configured, so this is OmniChat's offline echo model. Set "
    "OMNICHAT_OPENAI_API_KEY, OMNICHAT_ANTHROPIC_API_KEY, OMNICHAT_GEMINI_API_KEY or "
    "OMNICHAT_COHERE_API_KEY (or an OpenAI-compatible OMNICHAT_OPENAI_BASE_URL) for real replies."
)


def echo_reply(request: GenerationRequest) -> str:
    last = next((t.content for t in reversed(request.messages) if t.role == "user"), "")
    return f"{NOTICE}\n\nYou said: {last}"


class EchoChatModel:
    provider = LOCAL_PROVIDER

    def __init__(self, token_delay_s: float = 0.0) -> None:
        self._delay = token_delay_s

    def check(self, request: GenerationRequest) -> None:
        """The echo model says what it was sent and reads no field of it: nothing to refuse."""

    async def generate(self, request: GenerationRequest) -> Completion:
        return Completion(text=echo_reply(request))

    async def aclose(self) -> None:
        return None

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        words = echo_reply(request).split(" ")
        for index, word in enumerate(words):
            yield TextDelta(word if index == 0 else " " + word)
            await asyncio.sleep(self._delay)
        yield StreamEnd()
