"""Which models exist, what their names resolve to, and the adapters that serve them.

Names are ``provider:model``; short aliases (``claude``, ``gemini``, ``cohere``, ``gpt``) and
provider names alone mean that provider's default; a bare model id that only one provider offers
means that one. A provider with no key is not offered. With none configured, the offline
``local:echo`` model is the only one, and it is never offered beside a real provider.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omnichat.errors import BadRequest
from omnichat.llm.base import ChatModel, ProviderConfig
from omnichat.llm.providers.local import ECHO_MODEL, LOCAL_PROVIDER, EchoChatModel
from omnichat.settings import Settings

logger = logging.getLogger("omnichat.llm")
BUILTIN_KINDS = ("openai", "anthropic", "gemini", "cohere")
ALIASES = {
    "gpt": "openai",
    "chatgpt": "openai",
    "claude": "anthropic",
    "google": "gemini",
    "command": "cohere",
}
# Context windows by provider kind (tokens); OMNICHAT_CONTEXT_TOKENS overrides.
CONTEXT_TOKENS = {
    "openai": 128_000,
    "anthropic": 200_000,
    "gemini": 1_000_000,
    "cohere": 128_000,
    LOCAL_PROVIDER: 8_192,
}
_ADAPTERS = {
    "openai": ("omnichat.llm.providers.openai", "OpenAIChatModel"),
    "anthropic": ("omnichat.llm.providers.anthropic", "AnthropicChatModel"),
    "gemini": ("omnichat.llm.providers.gemini", "GeminiChatModel"),
    "cohere": ("omnichat.llm.providers.cohere", "CohereChatModel"),
}


class UnknownModel(BadRequest):
    pass


@dataclass(frozen=True, order=True)
class ModelRef:
    provider: str
    model: str

    @property
    def id(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass
class ProviderEntry:
    config: ProviderConfig
    models: list[str]
    context_tokens: int
    text_only: list[str] = field(default_factory=list)

    @property
    def default(self) -> ModelRef:
        return ModelRef(self.config.name, self.models[0])


@dataclass
class ModelRegistry:
    providers: dict[str, ProviderEntry]
    default: ModelRef
    fallbacks: list[ModelRef] = field(default_factory=list)
    # ``provider:model`` patterns (fnmatch) of models that read no images.
    text_only: list[str] = field(default_factory=list)
    _adapters: dict[str, ChatModel] = field(default_factory=dict)
    _factories: dict[str, Callable[[ProviderConfig], ChatModel]] = field(default_factory=dict)

    @property
    def offline(self) -> bool:
        return list(self.providers) == [LOCAL_PROVIDER]

    def available(self) -> list[ModelRef]:
        return [ModelRef(name, m) for name, entry in self.providers.items() for m in entry.models]

    def resolve(self, spec: str | None = None, *, provider: str | None = None) -> ModelRef:
        """A model name as a client wrote it (``None`` for the default) to a model we serve."""
        if self.offline:
            # No real provider: whatever a client asks for (seed 001 clients always name one),
            # the offline model answers, and its reply says why.
            return self.default
        spec = (spec or "").strip()
        provider = (provider or "").strip().lower() or None
        if provider:
            provider = ALIASES.get(provider, provider)
            if provider not in self.providers:
                raise self._unknown(f"provider '{provider}'")
            if not spec:
                return self.providers[provider].default
            return self._in_provider(provider, spec.split(":", 1)[1] if ":" in spec else spec)
        if not spec or spec.lower() == "default":
            return self.default
        if ":" in spec:
            name, model = spec.split(":", 1)
            name = ALIASES.get(name.lower(), name.lower())
            if name not in self.providers:
                raise self._unknown(f"provider '{name}'")
            return self._in_provider(name, model)
        lowered = ALIASES.get(spec.lower(), spec.lower())
        if lowered in self.providers:
            return self.providers[lowered].default
        matches = [ref for ref in self.available() if ref.model == spec]
        if len(matches) == 1:
            return matches[0]
        raise self._unknown(f"model '{spec}'")

    def chat_model(self, ref: ModelRef) -> ChatModel:
        adapter = self._adapters.get(ref.provider)
        if adapter is None:
            entry = self.providers[ref.provider]
            adapter = self._build(entry.config)
            self._adapters[ref.provider] = adapter
        return adapter

    def warm_up(self) -> None:
        """Build every provider's adapter now: importing an SDK takes seconds of CPU (openai's
        types alone), which must not land on the first request."""
        for name in self.providers:
            self.chat_model(self.providers[name].default)

    async def aclose(self) -> None:
        adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            await adapter.aclose()

    def context_tokens(self, ref: ModelRef) -> int:
        return self.providers[ref.provider].context_tokens

    def reads_images(self, ref: ModelRef) -> bool:
        """False for a model OMNICHAT_TEXT_ONLY_MODELS (or its provider's ``text_only_models``
        in the providers file) names; OmniChat has no other catalogue of model abilities.
        Patterns match case-insensitively; one without ``provider:`` matches the model id of
        any provider."""
        return not any(_names(pattern, ref) for pattern in self.text_only)

    def candidates(self, ref: ModelRef) -> list[ModelRef]:
        """The model asked for, then the configured fallbacks (each once)."""
        chain = [ref]
        chain.extend(f for f in self.fallbacks if f not in chain and f.provider in self.providers)
        return chain

    def _in_provider(self, provider: str, model: str) -> ModelRef:
        if model in self.providers[provider].models:
            return ModelRef(provider, model)
        raise self._unknown(f"model '{provider}:{model}'")

    def _unknown(self, what: str) -> UnknownModel:
        valid = ", ".join(ref.id for ref in self.available())
        return UnknownModel(f"Unknown or unconfigured {what}. Available models: {valid}")

    def _build(self, config: ProviderConfig) -> ChatModel:
        factory = self._factories.get(config.kind)
        if factory is not None:
            return factory(config)
        if config.kind == LOCAL_PROVIDER:
            return EchoChatModel()
        module_name, class_name = _ADAPTERS[config.kind]
        cls: Any = getattr(importlib.import_module(module_name), class_name)
        model: ChatModel = cls(config)
        return model


def _names(pattern: str, ref: ModelRef) -> bool:
    """Whether the fnmatch ``pattern`` (``provider:model`` or ``model``) names ``ref``."""
    target = ref.id if ":" in pattern else ref.model
    return fnmatch.fnmatchcase(target.lower(), pattern.strip().lower())


def _provider_config(
    settings: Settings, name: str, kind: str, key: str, base_url: str | None
) -> ProviderConfig:
    return ProviderConfig(
        name=name,
        kind=kind,
        api_key=key,
        base_url=base_url,
        connect_timeout_s=settings.llm_connect_timeout_s,
        idle_timeout_s=settings.llm_idle_timeout_s,
    )


def builtin_provider_config(settings: Settings, kind: str) -> ProviderConfig | None:
    """How to reach a built-in provider (OMNICHAT_<KIND>_API_KEY / _BASE_URL), or None without
    a key. Chat models and embedders both use it."""
    secret = getattr(settings, f"{kind}_api_key")
    base_url: str | None = getattr(settings, f"{kind}_base_url")
    key = secret.get_secret_value() if secret is not None else None
    # An OpenAI-compatible local server (Ollama, llama.cpp) needs no key, only its URL.
    if not key and kind == "openai" and base_url:
        key = "not-needed"
    return _provider_config(settings, kind, kind, key, base_url) if key else None


def _builtin_entries(settings: Settings) -> dict[str, ProviderEntry]:
    entries: dict[str, ProviderEntry] = {}
    for kind in BUILTIN_KINDS:
        config = builtin_provider_config(settings, kind)
        models = getattr(settings, f"{kind}_models")
        if config is not None and models:
            entries[kind] = ProviderEntry(
                config, list(models), settings.context_tokens or CONTEXT_TOKENS[kind]
            )
    return entries


class ProviderTable(BaseModel):
    """One ``[providers.<name>]`` table of the providers file, strictly typed: a wrong type or
    an unknown key is an error naming it (never read as something else: ``models = "x"`` is no
    list of models)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["openai", "anthropic", "gemini", "cohere"] = "openai"
    base_url: str | None = None
    api_key: str | None = None
    models: list[str] = Field(min_length=1)
    context_tokens: int | None = Field(default=None, gt=0)
    text_only_models: list[str] = Field(default_factory=list)


def _file_entries(settings: Settings, path: Path) -> dict[str, ProviderEntry]:
    """``[providers.<name>]`` tables (``ProviderTable``): ``kind`` (default "openai"),
    ``base_url``, ``api_key``, ``models`` (first is the default), ``context_tokens``,
    ``text_only_models`` (patterns of its models that read no images). ``ValueError`` naming
    the file, the provider and the field at fault (never a value: it may be a key)."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not a readable TOML file ({exc})") from None
    providers = document.get("providers", {})
    if not isinstance(providers, dict):
        raise ValueError(f"{path}: 'providers' must be a table of [providers.<name>] tables")
    entries: dict[str, ProviderEntry] = {}
    for name, raw in providers.items():
        try:
            table = ProviderTable.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'table'}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            raise ValueError(f"{path}: provider '{name}': {problems}") from None
        config = _provider_config(
            settings, name, table.kind, table.api_key or "not-needed", table.base_url
        )
        entries[name.lower()] = ProviderEntry(
            config,
            table.models,
            table.context_tokens or CONTEXT_TOKENS[table.kind],
            [f"{name.lower()}:{pattern}" for pattern in table.text_only_models],
        )
    return entries


def build_registry(
    settings: Settings, factories: dict[str, Callable[[ProviderConfig], ChatModel]] | None = None
) -> ModelRegistry:
    providers = _builtin_entries(settings)
    if settings.providers_file is not None:
        providers.update(_file_entries(settings, settings.providers_file))
    if not providers:
        providers[LOCAL_PROVIDER] = ProviderEntry(
            ProviderConfig(name=LOCAL_PROVIDER, kind=LOCAL_PROVIDER, api_key=""),
            [ECHO_MODEL],
            settings.context_tokens or CONTEXT_TOKENS[LOCAL_PROVIDER],
        )
    first = next(iter(providers.values())).default
    text_only = [*settings.text_only_models]
    text_only += [pattern for entry in providers.values() for pattern in entry.text_only]
    registry = ModelRegistry(
        providers=providers,
        default=first,
        text_only=text_only,
        _factories=dict(factories or {}),
    )
    for pattern in text_only:
        if not any(_names(pattern, ref) for ref in registry.available()):
            logger.warning("a text-only model pattern names no model", extra={"pattern": pattern})
    if settings.default_model:
        registry.default = registry.resolve(settings.default_model)
    registry.fallbacks = [registry.resolve(spec) for spec in settings.fallback_models]
    return registry
