"""OpenAI chat completions, and every server that speaks them (Ollama, vLLM, llama.cpp,
OpenRouter): the base URL decides.

Endings (``choices[].finish_reason``, openai SDK ``ChatCompletion``/``ChatCompletionChunk``):
``length`` -> length; ``tool_calls``, ``function_call`` -> tool_calls; ``content_filter`` ->
content_filter ("content filter"); ``stop``, none and anything else -> stop. A stream ends with
``data: [DONE]``: OpenAI-compatible servers often send no ``finish_reason`` at all (or ``""``)
and the reply is complete all the same; a body that ends with neither ``[DONE]`` nor a
``finish_reason`` was cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI

from omnichat.llm.base import ProviderConfig, stream_cut, translate_error
from omnichat.llm.finish import FinishMap
from omnichat.llm.sse import SSEDataParser
from omnichat.llm.types import (
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

_DRAIN_TIMEOUT_S = 1.0
_FINISH = FinishMap(
    length=frozenset({"length"}),
    tool_calls=frozenset({"tool_calls", "function_call"}),
    refusals={"content_filter": "content filter"},
)


def openai_messages(request: GenerationRequest) -> list[dict[str, Any]]:
    """The turns as given (a /v1 client's ``developer`` turn stays one), ``system`` first."""
    messages: list[dict[str, Any]] = (
        [{"role": "system", "content": request.system}] if request.system else []
    )
    for turn in request.messages:
        message: dict[str, Any] = {"role": turn.role, "content": turn.content}
        if turn.parts:
            message["content"] = [_part(part) for part in turn.parts]
        if turn.tool_calls:
            message["content"] = turn.content or None
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in turn.tool_calls
            ]
        if turn.tool_call_id is not None:
            message["tool_call_id"] = turn.tool_call_id
        messages.append(message)
    return messages


def _part(part: str | ImagePart) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    image: dict[str, Any] = {"url": part.url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _tool_params(tools: Tools) -> dict[str, Any]:
    if not tools.specs:
        return {}
    functions = []
    for spec in tools.specs:
        function: dict[str, Any] = {"name": spec.name}
        optional = {
            "description": spec.description,
            "parameters": spec.parameters,
            "strict": spec.strict,
        }
        function.update({key: value for key, value in optional.items() if value is not None})
        functions.append({"type": "function", "function": function})
    params: dict[str, Any] = {"tools": functions}
    if tools.choice == "function":
        params["tool_choice"] = {"type": "function", "function": {"name": tools.function}}
    else:
        params["tool_choice"] = tools.choice
    if tools.parallel is not None:
        params["parallel_tool_calls"] = tools.parallel
    return params


def openai_params(request: GenerationRequest, *, official: bool = False) -> dict[str, Any]:
    """The chat-completions body: every field of ``request`` under OpenAI's own name. The
    output limit goes under the name the client used; when it used none (the server's
    ceiling), ``max_completion_tokens`` for OpenAI's own API (``official``: its reasoning
    models refuse ``max_tokens``), ``max_tokens`` for compatible servers, which may know only
    that one."""
    sampling = request.sampling
    params: dict[str, Any] = {"model": request.model, "messages": openai_messages(request)}
    if request.max_tokens is not None:
        default = "max_completion_tokens" if official else "max_tokens"
        params[request.max_tokens_param or default] = request.max_tokens
    optional = {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "stop": list(sampling.stop) or None,
        "seed": sampling.seed,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
        "response_format": dict(sampling.response_format) if sampling.response_format else None,
        "reasoning_effort": sampling.reasoning_effort,
    }
    params.update({name: value for name, value in optional.items() if value is not None})
    params.update(sampling.end_user)
    params.update(sampling.openai_only)
    params.update(_tool_params(request.tools))
    return params


def _usage_of(usage: dict[str, Any]) -> Usage:
    return Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)


class OpenAIChatModel:
    def __init__(self, config: ProviderConfig) -> None:
        self.provider = config.name
        self._official = config.base_url is None  # api.openai.com itself
        timeout = openai.Timeout(**config.timeout_arguments())
        self._client = AsyncOpenAI(
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=0,  # one retry policy, ours
            timeout=timeout,
            # The SDK's aiohttp transport: its C HTTP parser costs a fraction of h11's per read.
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )

    async def aclose(self) -> None:
        await self._client.close()

    def check(self, request: GenerationRequest) -> None:
        """Every field has its OpenAI form: nothing to refuse."""

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        return openai_params(request, official=self._official)

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            response = await self._client.chat.completions.create(**self._params(request))
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice else ""
        calls = tuple(
            ToolCall(call.id, call.function.name, call.function.arguments)
            for call in (choice.message.tool_calls or () if choice else ())
            if call.type == "function"
        )
        ending = _FINISH(choice.finish_reason if choice else None)
        completion = ending.completion(text, _usage(response.usage), calls)
        if choice is not None and choice.logprobs is not None:
            completion = replace(completion, logprobs=choice.logprobs.model_dump(mode="json"))
        return completion

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """The SDK makes the request (auth, base URL, timeouts, status errors) and hands back the
        raw response; its body is parsed here a network read at a time (``SSEDataParser``, one
        ``json.loads`` per chunk, chunks left as dicts), which costs a fraction of the SDK's
        line-by-line decoder and typed chunks. An in-stream ``{"error": ...}`` event raises the
        SDK's ``APIError``, as its own stream does."""
        finish_reason: str | None = None
        done = False
        usage = Usage()
        body = {**self._params(request), "stream": True, "stream_options": {"include_usage": True}}
        try:
            response = await self._client.post(
                "/chat/completions", body=body, cast_to=httpx2.Response, stream=True
            )
            try:
                parser = SSEDataParser()
                async with contextlib.aclosing(response.aiter_bytes()) as body_chunks:
                    async for raw in body_chunks:
                        for data in parser.feed(raw):
                            if data.startswith(b"[DONE]"):
                                done = True
                                break
                            chunk = json.loads(data)
                            if not isinstance(chunk, dict):
                                continue
                            if chunk.get("error"):
                                raise _stream_error(chunk["error"], response)
                            if chunk.get("usage"):
                                usage = _usage_of(chunk["usage"])
                            for choice in chunk.get("choices") or ():
                                delta = choice.get("delta") or {}
                                content = delta.get("content")
                                logprobs = choice.get("logprobs")
                                if content or logprobs:
                                    yield TextDelta(content or "", logprobs)
                                for call in delta.get("tool_calls") or ():
                                    yield _tool_call_delta(call)
                                if choice.get("finish_reason"):
                                    finish_reason = choice["finish_reason"]
                        if done:
                            await _drain(body_chunks)
                            break
            finally:
                await response.aclose()
        except Exception as exc:
            raise translate_error(exc, self.provider) from exc
        if finish_reason is None and not done:
            raise stream_cut(self.provider)
        yield _FINISH(finish_reason).stream_end(usage)


def _tool_call_delta(call: dict[str, Any]) -> ToolCallDelta:
    """One ``delta.tool_calls[]`` entry of a chunk."""
    function = call.get("function") or {}
    return ToolCallDelta(
        index=int(call.get("index") or 0),
        arguments=function.get("arguments") or "",
        id=call.get("id"),
        name=function.get("name"),
    )


def _stream_error(error: Any, response: httpx2.Response) -> openai.APIError:
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return openai.APIError(message, response.request, body=error)


async def _drain(body_chunks: AsyncIterator[bytes]) -> None:
    """What follows ``[DONE]`` (usually just the body's end, often in the same read), so that
    the HTTP/1.1 connection goes back to the pool rather than being closed."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_DRAIN_TIMEOUT_S):
            async for _ in body_chunks:
                pass
