"""``GET /v1/models`` and ``GET /v1/models/{model}`` in OpenAI's wire format: the chat models the
registry offers and the embedding model ``/v1/embeddings`` serves."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel

from omnichat.authenticate_first import AuthenticateFirstRoute
from omnichat.deps import CurrentUser, EmbeddingsDep, GenerationDep
from omnichat.errors import NotFound, error_responses
from omnichat.generation.service import GenerationService
from omnichat.rag.embedding_service import EmbeddingService

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], route_class=AuthenticateFirstRoute)

# As long as a model name in a request body may be.
MAX_MODEL_ID_CHARS = 200


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    # OpenAI's creation time (Unix seconds); OmniChat does not know it for any model.
    created: int = 0
    owned_by: str


class ModelListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


def _models(generation: GenerationService, embeddings: EmbeddingService) -> list[ModelOut]:
    chat = [ModelOut(id=ref.id, owned_by=ref.provider) for ref in generation.registry.available()]
    return [*chat, ModelOut(id=embeddings.model, owned_by=embeddings.provider)]


@router.get("/models", responses=error_responses(401, openai=True))
async def list_models(
    user: CurrentUser, generation: GenerationDep, embeddings: EmbeddingsDep
) -> ModelListOut:
    return ModelListOut(data=_models(generation, embeddings))


# ``:path``: a model id may hold a slash (``openrouter:meta-llama/llama-3.1-8b``), which the
# OpenAI SDK sends percent-encoded.
@router.get("/models/{model:path}", responses=error_responses(400, 401, 404, openai=True))
async def retrieve_model(
    model: Annotated[str, Path(max_length=MAX_MODEL_ID_CHARS)],
    user: CurrentUser,
    generation: GenerationDep,
    embeddings: EmbeddingsDep,
) -> ModelOut:
    for listed in _models(generation, embeddings):
        if listed.id == model:
            return listed
    raise NotFound(
        f"The model '{model}' does not exist; GET /v1/models lists them",
        param="model",
        code="model_not_found",
    )
