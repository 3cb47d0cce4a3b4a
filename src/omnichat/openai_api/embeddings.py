"""``POST /v1/embeddings`` in OpenAI's wire format, served by the configured embedder (see
``rag.embedding_service``): ``{"object": "list", "data": [{"object": "embedding", "index",
"embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``.

``encoding_format: "base64"`` (what the OpenAI SDK asks for unless told otherwise, and decodes
itself) is each vector's little-endian float32 bytes, base64-encoded. Vectors are float32 in
both formats, so a client gets the same numbers either way."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from omnichat.authenticate_first import AuthenticateFirstRoute
from omnichat.deps import CurrentUser, EmbeddingsDep
from omnichat.errors import error_responses
from omnichat.rag.embedding_service import MAX_INPUTS, Embedded
from omnichat.schemas import RequestModel

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], route_class=AuthenticateFirstRoute)


def _text_input(value: Any) -> Any:
    """``input`` must be a string or 1 to ``MAX_INPUTS`` strings. OpenAI's token arrays are
    refused by name: their ids are OpenAI's tokenizer's, which this model cannot read."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if not value:
            raise PydanticCustomError("too_short", "input must not be an empty array")
        if len(value) > MAX_INPUTS:
            raise PydanticCustomError("too_long", f"input holds at most {MAX_INPUTS} texts")
        if all(isinstance(item, str) for item in value):
            return value
        if all(isinstance(item, int) or _is_tokens(item) for item in value):
            raise PydanticCustomError(
                "token_input",
                "Token arrays are not supported: their ids are OpenAI's tokenizer's, which this "
                "embedding model does not read; send the text",
            )
    raise PydanticCustomError("text_input", "input must be a string or an array of strings")


def _is_tokens(item: object) -> bool:
    return isinstance(item, list) and all(isinstance(token, int) for token in item)


class EmbeddingRequest(RequestModel):
    """OpenAI's request, every field of it; any other field is refused (400 naming it)."""

    input: Annotated[
        str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)],
        BeforeValidator(_text_input),
    ]
    model: Annotated[str, Field(min_length=1, max_length=200)]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int | None, Field(ge=1, le=65_536)] = None
    # OpenAI's end-user id, for its abuse monitoring. Accepted, so that clients that always send
    # it work, and not used: OmniChat knows the authenticated user, and a remote embedder's
    # provider is not told who OmniChat's users are.
    user: Annotated[str | None, Field(max_length=256)] = None


class EmbeddingOut(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingUsageOut(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingListOut(BaseModel):
    object: Literal["list"]
    data: list[EmbeddingOut]
    model: str
    usage: EmbeddingUsageOut


def _render(embedded: Embedded, base64_format: bool) -> bytes:
    """The response body. CPU work (up to 2048 vectors): run it off the event loop."""
    matrix = np.asarray(embedded.vectors, dtype="<f4")
    rows: list[Any]
    if base64_format:
        rows = [base64.b64encode(row.tobytes()).decode("ascii") for row in matrix]
    else:
        rows = matrix.tolist()
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": row}
            for index, row in enumerate(rows)
        ],
        "model": embedded.model,
        "usage": {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens},
    }
    return json.dumps(body, separators=(",", ":")).encode()


@router.post(
    "/embeddings",
    response_model=EmbeddingListOut,
    responses=error_responses(400, 401, 404, 413, 429, 502, 503, openai=True),
)
async def create_embeddings(
    body: EmbeddingRequest, user: CurrentUser, embeddings: EmbeddingsDep
) -> Response:
    embeddings.resolve(body.model)
    single = isinstance(body.input, str)
    texts = [body.input] if isinstance(body.input, str) else body.input
    embedded = await embeddings.embed(user.id, texts, single=single, dimensions=body.dimensions)
    content = await asyncio.to_thread(_render, embedded, body.encoding_format == "base64")
    return Response(content, media_type="application/json")
