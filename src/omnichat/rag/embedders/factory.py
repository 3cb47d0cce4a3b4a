"""The embedder a deployment's settings name: "local" (all-MiniLM-L6-v2 on ONNX Runtime;
"local:fp32" and "local:int8" pick its precision), "local-torch" (the same model on torch, for
comparison), or provider:model[:dims]."""

from __future__ import annotations

from omnichat.llm.base import ProviderConfig
from omnichat.llm.registry import builtin_provider_config
from omnichat.rag.embedders.base import Embedder
from omnichat.rag.embedders.remote import EmbeddingModel
from omnichat.settings import Settings

REMOTE_PROVIDERS = ("openai", "cohere", "gemini")
# OMNICHAT_EMBEDDER value -> the ONNX precision ("auto": see local_onnx.AUTO)
LOCAL_SPECS = {
    "local": "auto",
    "local:all-minilm-l6-v2": "auto",
    "local:fp32": "fp32",
    "local:int8": "int8",
}
LOCAL_TORCH_SPECS = ("local-torch",)
_KEY_VARIABLES = {
    "openai": "OMNICHAT_OPENAI_API_KEY",
    "cohere": "OMNICHAT_COHERE_API_KEY",
    "gemini": "OMNICHAT_GEMINI_API_KEY",
}


def _provider_config(settings: Settings, provider: str) -> ProviderConfig:
    config = builtin_provider_config(settings, provider)
    if config is None:
        raise ValueError(
            f"OMNICHAT_EMBEDDER={settings.embedder} needs {_KEY_VARIABLES[provider]} to be set"
        )
    return config


def build_embedder(settings: Settings) -> Embedder:
    spec = settings.embedder.strip()
    if spec.lower() in LOCAL_SPECS:
        from omnichat.rag.embedders.local_onnx import OnnxMiniLMEmbedder

        return OnnxMiniLMEmbedder(
            settings.resolved_model_cache_dir / "all-MiniLM-L6-v2",
            threads=settings.embed_threads,
            precision=LOCAL_SPECS[spec.lower()],
        )
    if spec.lower() in LOCAL_TORCH_SPECS:
        from omnichat.rag.embedders.local import LocalMiniLMEmbedder

        return LocalMiniLMEmbedder(batch_size=settings.embed_batch_size)
    provider, _, rest = spec.partition(":")
    provider = provider.lower()
    if provider not in REMOTE_PROVIDERS or not rest:
        raise ValueError(
            f"OMNICHAT_EMBEDDER={spec!r} is not supported: use 'local', 'local-torch' or "
            f"<{'|'.join(REMOTE_PROVIDERS)}>:<model>[:<dimensions>]"
        )
    model = EmbeddingModel.parse(provider, rest)
    config = _provider_config(settings, provider)
    if provider == "openai":
        from omnichat.rag.embedders.openai import OpenAIEmbedder

        return OpenAIEmbedder(model, config)
    if provider == "cohere":
        from omnichat.rag.embedders.cohere import CohereEmbedder

        return CohereEmbedder(model, config)
    from omnichat.rag.embedders.gemini import GeminiEmbedder

    return GeminiEmbedder(model, config)
