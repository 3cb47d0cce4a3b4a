"""OpenAI chat-completions request bodies: every field of OpenAI's request
(https://platform.openai.com/docs/api-reference/chat/create) is modelled, so that each is either
carried to the provider (``routes._prompt`` into ``Sampling``) or refused by name with a 400.
A field OpenAI does not have is a 400 naming it too; nothing a client sends is dropped."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from omnichat.schemas import RequestModel

MAX_TEXT_CHARS = 10_000_000
ShortText = Annotated[str, Field(max_length=1000)]
StopText = Annotated[str, Field(min_length=1, max_length=1000)]
Bias = Annotated[int, Field(ge=-100, le=100)]
MetadataValue = Annotated[str, Field(max_length=512)]


class OpenAIRequestModel(RequestModel):
    """``/v1`` bodies: unknown fields are refused (400 naming the field), like every body, and
    values must have their JSON type, as OpenAI's API wants them (``"n": "2"`` or
    ``"logprobs": 1`` is a 400, not read as 2 and true; an integer is still a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(OpenAIRequestModel):
    type: Literal["text"]
    text: Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


class OtherPart(RequestModel):
    """An image, audio or file part: modelled so that the refusal can name it."""

    model_config = ConfigDict(extra="allow")
    type: Annotated[str, Field(max_length=100)]


Content = (
    Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
    | Annotated[list[TextPart | OtherPart], Field(max_length=1000)]
)


FunctionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class FunctionCallIn(OpenAIRequestModel):
    name: FunctionName
    arguments: Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


class ToolCallIn(OpenAIRequestModel):
    """An earlier reply's tool call, as the client sends the conversation back."""

    id: Annotated[str, Field(min_length=1, max_length=256)]
    type: Literal["function"] = "function"
    function: FunctionCallIn


class FunctionIn(OpenAIRequestModel):
    name: FunctionName
    description: Annotated[str | None, Field(max_length=100_000)] = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolIn(OpenAIRequestModel):
    type: Literal["function"]
    function: FunctionIn


class NamedFunction(OpenAIRequestModel):
    name: FunctionName


class NamedToolChoice(OpenAIRequestModel):
    type: Literal["function"]
    function: NamedFunction


class ChatMessageIn(OpenAIRequestModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Content | None = None
    name: Annotated[str | None, Field(max_length=256)] = None
    tool_calls: Annotated[list[ToolCallIn] | None, Field(max_length=128)] = None
    tool_call_id: Annotated[str | None, Field(max_length=256)] = None
    function_call: dict[str, Any] | None = None
    refusal: Annotated[str | None, Field(max_length=MAX_TEXT_CHARS)] = None
    audio: dict[str, Any] | None = None
    # Output metadata (web citations) the SDK hands back with a reply: nothing to send back.
    annotations: Annotated[list[dict[str, Any]] | None, Field(max_length=1000)] = None


class StreamOptions(OpenAIRequestModel):
    include_usage: bool = False
    # Padding OpenAI may add to stream events; OmniChat never pads, so either value is kept.
    include_obfuscation: bool | None = None


class JSONSchemaFormat(OpenAIRequestModel):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    description: Annotated[str | None, Field(max_length=10_000)] = None
    # model_json_schema's word, "schema", is an attribute of BaseModel: aliased.
    json_schema: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    strict: bool | None = None


class ResponseFormat(OpenAIRequestModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class ChatCompletionRequest(OpenAIRequestModel):
    model: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[ChatMessageIn], Field(min_length=1, max_length=10_000)]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None
    n: Annotated[int | None, Field(ge=1, le=128)] = None
    stop: StopText | Annotated[list[StopText], Field(max_length=16)] | None = None
    seed: int | None = None
    presence_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    frequency_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    user: Annotated[str | None, Field(max_length=256)] = None
    safety_identifier: Annotated[str | None, Field(max_length=256)] = None
    # OpenAI's own: forwarded to OpenAI-format servers, refused by the other providers.
    logit_bias: Annotated[
        dict[str, Annotated[int, Field(ge=-100, le=100)]] | None, Field(max_length=1024)
    ] = None
    metadata: Annotated[
        dict[str, Annotated[str, Field(max_length=512)]] | None, Field(max_length=16)
    ] = None
    store: bool | None = None
    service_tier: Annotated[str | None, Field(max_length=32)] = None
    prompt_cache_key: Annotated[str | None, Field(max_length=1024)] = None
    prompt_cache_retention: Annotated[str | None, Field(max_length=32)] = None
    verbosity: Literal["low", "medium", "high"] | None = None
    # Refused until carried (routes._refuse_uncarried).
    logprobs: bool | None = None
    top_logprobs: Annotated[int | None, Field(ge=0, le=20)] = None
    tools: Annotated[list[ToolIn] | None, Field(max_length=128)] = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: Annotated[list[dict[str, Any]] | None, Field(max_length=128)] = None
    function_call: str | dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    modalities: Annotated[list[Literal["text", "audio"]] | None, Field(max_length=2)] = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    # OmniChat's extension (``extra_body={"rag": true}`` from the SDK): ground the answer in the
    # caller's documents; ``sources`` then ride on the response (or the closing chunk).
    rag: bool = False
