"""Google Gemini through google-genai (API-key mode).

Endings: a candidate's ``finishReason`` (google-genai ``types.FinishReason``) ends the reply, in
a stream too: ``MAX_TOKENS``, ``CONTINUATION`` -> length; the block values (``_FINISH``'s
refusals: ``SAFETY``, ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``, ...) ->
content_filter; ``STOP``, ``OTHER`` and anything else -> stop (Gemini has no tool-use value: a
function call ends with ``STOP``: then tool_calls). A response with ``promptFeedback.blockReason``
(``types.BlockedReason``) and no candidates is a blocked prompt: content_filter ("prompt
blocked: safety"). A stream whose body ends without either was cut.

Tools (Gemini API "Function calling" and "Thought signatures" guides; google-genai
``types.Tool``, ``FunctionDeclaration``, ``ToolConfig``, ``FunctionCallingConfig``,
``FunctionCall``, ``FunctionResponse``; REST ``tools[].functionDeclarations``,
``toolConfig.functionCallingConfig``, ``functionCall`` and ``functionResponse`` parts):

- OpenAI's functions -> one ``Tool`` of ``FunctionDeclaration(name, description,
  parameters_json_schema)``; ``tool_choice`` auto, required, none -> mode ``AUTO``, ``ANY``,
  ``NONE``; a named function -> ``ANY`` with ``allowed_function_names: [name]``.
- ``strict: true`` on any function, with ``auto`` -> mode ``VALIDATED`` (calls or text, calls
  decoded to their schema: OpenAI's strict; the mode is one for all functions, so the others get
  that guarantee too); ``ANY`` constrains calls to their schemas already.
- ``parallel_tool_calls: false`` has no Gemini form (it may always make several calls at once):
  ``UnsupportedField``, but with ``tool_choice: none``.
- An assistant turn's ``tool_calls`` -> ``functionCall`` parts of a model content (``args``: the
  arguments as an object); ``tool`` turns -> ``functionResponse`` parts of the user content
  after it, all of one turn's calls together (``response``: the result when it is a JSON object,
  else ``{"result": text}``, as google-genai's own function calling sends it).
- Gemini 3 refuses replayed calls without the ``thoughtSignature`` it gave them, which OpenAI's
  wire has no place for: the first call of each turn carries Google's documented stand-in for
  history it did not produce, ``skip_thought_signature_validator``.
- The model's ``functionCall`` parts -> ``ToolCall``s (id: Gemini's, else ``call_<uuid hex>``;
  args as JSON text), streamed each whole in one chunk; a reply with calls that ends with
  ``STOP`` ends with tool_calls.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from google import genai
from google.genai import types

from omnichat.errors import BadRequest, UnsupportedField
from omnichat.llm.base import (
    ProviderConfig,
    refuse_openai_only,
    require_dialogue,
    stream_cut,
    tool_call_arguments,
    translate_error,
)
from omnichat.llm.finish import Ending, FinishMap, native_value
from omnichat.llm.types import (
    CONTENT_FILTER,
    INSTRUCTION_ROLES,
    ChatTurn,
    Completion,
    GenerationRequest,
    ImagePart,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Tools,
    Usage,
)

PROVIDER_NAME = "Gemini"
_THINKING_LEVELS = {
    "minimal": types.ThinkingLevel.MINIMAL,
    "low": types.ThinkingLevel.LOW,
    "medium": types.ThinkingLevel.MEDIUM,
    "high": types.ThinkingLevel.HIGH,
    "xhigh": types.ThinkingLevel.XHIGH,
}
_FINISH = FinishMap(
    length=frozenset({"MAX_TOKENS", "CONTINUATION"}),
    refusals={
        "SAFETY": "safety",
        "RECITATION": "recitation",
        "LANGUAGE": "unsupported language",
        "BLOCKLIST": "blocklist",
        "PROHIBITED_CONTENT": "prohibited content",
        "SPII": "sensitive personal information",
        "IMAGE_SAFETY": "image safety",
        "IMAGE_PROHIBITED_CONTENT": "prohibited image content",
        "IMAGE_RECITATION": "image recitation",
        "MODEL_ARMOR": "model armor",
        "ESCALATION": "escalation rule",
        "PUP_LIMITED_DISABLED": "prohibited use policy",
    },
)
_MODES = {
    "auto": types.FunctionCallingConfigMode.AUTO,
    "required": types.FunctionCallingConfigMode.ANY,
    "none": types.FunctionCallingConfigMode.NONE,
    "function": types.FunctionCallingConfigMode.ANY,
}
# Google's stand-in thought signature (its "Thought signatures" guide), as the bytes google-genai
# writes back as this very text (it base64-encodes bytes URL-safe).
_FOREIGN_SIGNATURE = base64.urlsafe_b64decode("skip_thought_signature_validator")
# promptFeedback.blockReason; BLOCKED_REASON_UNSPECIFIED and unknown values: just "prompt blocked".
_BLOCK_REASONS = {
    "SAFETY": "safety",
    "OTHER": "other",
    "BLOCKLIST": "blocklist",
    "PROHIBITED_CONTENT": "prohibited content",
    "IMAGE_SAFETY": "image safety",
    "MODEL_ARMOR": "model armor",
    "JAILBREAK": "jailbreak",
}


def _usage(metadata: Any) -> Usage:
    if metadata is None:
        return Usage()
    return Usage(metadata.prompt_token_count, metadata.candidates_token_count)


def _ending(response: Any) -> Ending | None:
    """How ``response`` (a ``GenerateContentResponse``, or one chunk of a stream) ends the reply;
    None while it goes on."""
    for candidate in response.candidates or ():
        if candidate.finish_reason is not None:
            return _FINISH(candidate.finish_reason)
    feedback = response.prompt_feedback
    if not response.candidates and feedback is not None and feedback.block_reason is not None:
        reason = _BLOCK_REASONS.get(native_value(feedback.block_reason))
        return Ending(CONTENT_FILTER, f"prompt blocked: {reason}" if reason else "prompt blocked")
    return None


def _text(response: Any) -> str:
    parts = []
    for candidate in response.candidates[:1] if response.candidates else ():
        for part in candidate.content.parts or () if candidate.content else ():
            if part.text and not part.thought:
                parts.append(part.text)
    return "".join(parts)


def _thinking(effort: str | None) -> types.ThinkingConfig | None:
    """OpenAI's reasoning_effort as Gemini's thinking level ("none": a thinking budget of 0)."""
    if effort is None:
        return None
    if effort == "none":
        return types.ThinkingConfig(thinking_budget=0)
    level = _THINKING_LEVELS.get(effort)
    if level is None:
        raise UnsupportedField("reasoning_effort", PROVIDER_NAME)
    return types.ThinkingConfig(thinking_level=level)


def _tool_config(tools: Tools) -> dict[str, Any]:
    """``GenerateContentConfig``'s ``tools`` and ``tool_config``, nothing when no function is
    offered. Raises ``UnsupportedField`` for ``parallel_tool_calls: false`` (but with
    ``tool_choice: none``: no call at all)."""
    if not tools.specs:
        return {}
    if tools.parallel is False and tools.choice != "none":
        why = "it may always make several calls at once"
        raise UnsupportedField("parallel_tool_calls", PROVIDER_NAME, why)
    declarations = [
        types.FunctionDeclaration(
            name=spec.name,
            description=spec.description,
            parameters_json_schema=dict(spec.parameters) if spec.parameters is not None else None,
        )
        for spec in tools.specs
    ]
    mode = _MODES[tools.choice]
    if tools.choice == "auto" and any(spec.strict for spec in tools.specs):
        mode = types.FunctionCallingConfigMode.VALIDATED
    named = [tools.function] if tools.choice == "function" and tools.function else None
    calling = types.FunctionCallingConfig(mode=mode, allowed_function_names=named)
    return {
        "tools": [types.Tool(function_declarations=declarations)],
        "tool_config": types.ToolConfig(function_calling_config=calling),
    }


def _result(text: str) -> dict[str, Any]:
    """A tool's result as ``FunctionResponse.response``: a JSON object as it is, anything else
    as ``{"result": text}``."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"result": text}


def _image_or_text(part: str | ImagePart) -> types.Part:
    """A text piece, or a ``data:`` image as ``inline_data``; Gemini fetches no URL."""
    if isinstance(part, str):
        return types.Part(text=part)
    if part.data is None:
        raise UnsupportedField("image_url", PROVIDER_NAME, "it takes images as data: URLs")
    if part.detail not in (None, "auto"):
        raise UnsupportedField("detail", PROVIDER_NAME, "it sizes images itself")
    return types.Part(inline_data=types.Blob(mime_type=part.media_type, data=part.data))


def _parts(turn: ChatTurn, index: int) -> list[types.Part]:
    """One dialogue turn's parts; ``index``: its place among the turns (a /v1 client's
    messages, as sent), for the ``param`` of what is refused."""
    if turn.role == "tool":
        if not turn.tool_name:
            raise BadRequest(
                f"{PROVIDER_NAME} needs the function a tool result answers",
                param=f"messages[{index}].tool_call_id",
            )
        response = types.FunctionResponse(
            id=turn.tool_call_id, name=turn.tool_name, response=_result(turn.content)
        )
        return [types.Part(function_response=response)]
    if turn.parts:
        return [_image_or_text(part) for part in turn.parts]
    if not turn.tool_calls:
        return [types.Part(text=turn.content)]
    parts = [types.Part(text=turn.content)] if turn.content else []
    for number, call in enumerate(turn.tool_calls):
        where = f"messages[{index}].tool_calls[{number}].function.arguments"
        function_call = types.FunctionCall(
            id=call.id, name=call.name, args=tool_call_arguments(call, PROVIDER_NAME, where)
        )
        signature = _FOREIGN_SIGNATURE if number == 0 else None
        parts.append(types.Part(function_call=function_call, thought_signature=signature))
    return parts


def _contents(turns: tuple[ChatTurn, ...]) -> list[types.Content]:
    """The dialogue (instruction turns go to ``system_instruction``), consecutive turns of one
    role as one ``Content`` of several parts: Gemini wants the roles to alternate, and the
    responses to one turn's calls together in the content right after it."""
    contents: list[types.Content] = []
    for index, turn in enumerate(turns):
        if turn.role in INSTRUCTION_ROLES:
            continue
        role = "model" if turn.role == "assistant" else "user"
        parts = _parts(turn, index)
        if contents and contents[-1].role == role and contents[-1].parts is not None:
            contents[-1].parts.extend(parts)
        else:
            contents.append(types.Content(role=role, parts=parts))
    return contents


def _function_calls(response: Any) -> list[types.FunctionCall]:
    """The first candidate's ``functionCall`` parts (of a response, or one stream chunk)."""
    calls = []
    for candidate in response.candidates[:1] if response.candidates else ():
        for part in candidate.content.parts or () if candidate.content else ():
            if part.function_call is not None:
                calls.append(part.function_call)
    return calls


def _call_id(call: types.FunctionCall) -> str:
    return call.id or f"call_{uuid.uuid4().hex}"


def _with_calls(ending: Ending, called: bool) -> Ending:
    """Gemini ends a reply that calls functions with ``STOP``: OpenAI's ending is tool_calls."""
    return Ending("tool_calls") if called and ending.finish_reason == "stop" else ending


class GeminiChatModel:
    def __init__(self, config: ProviderConfig) -> None:
        self.provider = config.name
        timeout_ms = int(max(config.idle_timeout_s, config.connect_timeout_s) * 1000)
        options = types.HttpOptions(
            base_url=config.base_url,
            timeout=timeout_ms,
            # google-genai switches to aiohttp by itself whenever aiohttp is installed (it is,
            # for OpenAI's transport), with other errors and timeout semantics; a transport of
            # our choosing keeps it on httpx2, the backend its error handling here is built for.
            async_client_args={"transport": httpx2.AsyncHTTPTransport()},
        )
        self._client = genai.Client(api_key=config.api_key, http_options=options)

    async def aclose(self) -> None:
        await self._client.aio.aclose()

    def check(self, request: GenerationRequest) -> None:
        self._arguments(request)

    def _arguments(self, request: GenerationRequest) -> dict[str, Any]:
        """``generate_content``'s arguments: ``_contents``, ``_tool_config`` and the sampling
        fields. Raises ``UnsupportedField`` for what Gemini has no form of, ``BadRequest`` for
        tool call arguments that are no JSON object."""
        sampling = request.sampling
        require_dialogue(request, PROVIDER_NAME)
        refuse_openai_only(sampling, PROVIDER_NAME)
        schema = sampling.json_schema()
        config = types.GenerateContentConfig(
            system_instruction=request.instructions(),
            max_output_tokens=request.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop_sequences=list(sampling.stop) or None,
            seed=sampling.seed,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
            response_mime_type=(
                "application/json" if schema is not None or sampling.wants_json_object() else None
            ),
            response_json_schema=dict(schema) if schema else None,
            thinking_config=_thinking(sampling.reasoning_effort),
            **_tool_config(request.tools),
        )
        return {"model": request.model, "contents": _contents(request.messages), "config": config}

    async def generate(self, request: GenerationRequest) -> Completion:
        arguments = self._arguments(request)  # what it refuses is the client's, not Gemini's
        try:
            response = await self._client.aio.models.generate_content(**arguments)
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        calls = tuple(
            ToolCall(_call_id(call), call.name or "", json.dumps(call.args or {}))
            for call in _function_calls(response)
        )
        ending = _with_calls(_ending(response) or Ending(), bool(calls))
        return ending.completion(_text(response), _usage(response.usage_metadata), calls)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Text deltas and tool calls as they come: Gemini sends each call whole in one chunk,
        given here as one ``ToolCallDelta`` (calls numbered from 0 across the stream)."""
        ending: Ending | None = None
        usage = Usage()
        calls = 0
        arguments = self._arguments(request)
        try:
            stream = await self._client.aio.models.generate_content_stream(**arguments)
            async for response in stream:
                text = _text(response)
                if text:
                    yield TextDelta(text)
                for call in _function_calls(response):
                    yield ToolCallDelta(
                        index=calls,
                        arguments=json.dumps(call.args or {}),
                        id=_call_id(call),
                        name=call.name or "",
                    )
                    calls += 1
                if response.usage_metadata is not None:
                    usage = _usage(response.usage_metadata)
                ending = _ending(response) or ending
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        if ending is None:
            raise stream_cut(self.provider)
        yield _with_calls(ending, calls > 0).stream_end(usage)
