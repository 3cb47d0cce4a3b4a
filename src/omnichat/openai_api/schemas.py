"""OpenAI chat-completions request bodies (the subset a chat backend serves)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from omnichat.schemas import RequestModel


class OpenAIRequestModel(RequestModel):
    """``/v1`` bodies. OpenAI's request has many fields this subset does not model; they are
    still ignored here (not refused as elsewhere), a known gap of ``/v1`` recorded in its
    docs, until each is forwarded to the provider or refused by name."""

    model_config = ConfigDict(extra="ignore")


class TextPart(OpenAIRequestModel):
    type: Literal["text"]
    text: Annotated[str, Field(max_length=10_000_000)]


class OtherPart(BaseModel):
    type: str


class ChatMessageIn(OpenAIRequestModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: (
        Annotated[str, Field(max_length=10_000_000)]
        | Annotated[list[TextPart | OtherPart], Field(max_length=100)]
        | None
    ) = None

    def text(self) -> str | None:
        """The message's text, or None when it has parts this backend cannot forward."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        if any(not isinstance(part, TextPart) for part in self.content):
            return None
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


class StreamOptions(OpenAIRequestModel):
    include_usage: bool = False


class ChatCompletionRequest(OpenAIRequestModel):
    model: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[ChatMessageIn], Field(min_length=1, max_length=10_000)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    # OmniChat's extension (``extra_body={"rag": true}`` from the SDK): ground the answer in the
    # caller's documents; ``sources`` then ride on the response (or the closing chunk).
    rag: bool = False
