"""Unit tests of single LLM-layer modules: model resolution, context building, retry delays."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnichat.errors import InvalidInput
from omnichat.llm.context import StoredTurn, clean_history, estimate_tokens, fit_to_budget
from omnichat.llm.errors import ProviderRateLimited, ProviderUnavailable, parse_retry_after, redact
from omnichat.llm.registry import ModelRef, UnknownModel, build_registry
from omnichat.llm.resilience import RetryPolicy
from omnichat.llm.types import ChatTurn
from omnichat.settings import Settings


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, secret_key="k" * 40, **values)


def test_no_provider_means_offline_echo_only(tmp_path: Path) -> None:
    registry = build_registry(_settings(tmp_path))
    assert registry.offline
    assert [r.id for r in registry.available()] == ["local:echo"]
    # Whatever a client names, the offline model answers (and says why).
    assert registry.resolve("gemini-pro", provider="gemini") == ModelRef("local", "echo")


def test_provider_without_key_is_not_offered(tmp_path: Path) -> None:
    registry = build_registry(_settings(tmp_path, anthropic_api_key="a-key"))
    assert {r.provider for r in registry.available()} == {"anthropic"}
    assert not registry.offline
    with pytest.raises(UnknownModel) as error:
        registry.resolve("gpt")
    assert "anthropic:claude-sonnet-5-5" in error.value.detail


def test_aliases_and_names(tmp_path: Path) -> None:
    registry = build_registry(
        _settings(
            tmp_path,
            openai_api_key="o",
            anthropic_api_key="a",
            gemini_api_key="g",
            cohere_api_key="c",
        )
    )
    assert registry.resolve("claude") == ModelRef("anthropic", "claude-sonnet-5-5")
    assert registry.resolve("gemini") == ModelRef("gemini", "gemini-3.8-flash")
    assert registry.resolve("cohere") == ModelRef("cohere", "command-a-plus-05-2026")
    assert registry.resolve("gpt") == ModelRef("openai", "gpt-5.4-mini")
    assert registry.resolve("openai:gpt-5.5") == ModelRef("openai", "gpt-5.5")
    assert registry.resolve("gpt-5.5") == ModelRef("openai", "gpt-5.5")
    assert registry.resolve("gemini-3.5-flash", provider="gemini") == ModelRef(
        "gemini", "gemini-3.5-flash"
    )
    assert registry.resolve(None) == registry.default == ModelRef("openai", "gpt-5.4-mini")
    with pytest.raises(UnknownModel):
        registry.resolve("gemini-pro", provider="gemini")
    with pytest.raises(UnknownModel):
        registry.resolve("nope:model")
    assert "local:echo" not in {r.id for r in registry.available()}


def test_default_and_fallbacks_from_settings(tmp_path: Path) -> None:
    registry = build_registry(
        _settings(
            tmp_path,
            openai_api_key="o",
            anthropic_api_key="a",
            default_model="anthropic:claude-haiku-5-5",
            fallback_models=["openai:gpt-5.4-mini", "anthropic:claude-haiku-5-5"],
        )
    )
    assert registry.default == ModelRef("anthropic", "claude-haiku-5-5")
    assert [r.id for r in registry.candidates(registry.default)] == [
        "anthropic:claude-haiku-5-5",
        "openai:gpt-5.4-mini",
    ]


def test_openai_compatible_server_needs_no_key_and_file_providers(tmp_path: Path) -> None:
    providers = tmp_path / "providers.toml"
    providers.write_text(
        "[providers.ollama]\n"
        'base_url = "http://127.0.0.1:11434/v1"\n'
        'models = ["llama3.2", "qwen3"]\n'
    )
    registry = build_registry(
        _settings(tmp_path, openai_base_url="http://127.0.0.1:8000/v1", providers_file=providers)
    )
    assert registry.resolve("ollama") == ModelRef("ollama", "llama3.2")
    assert registry.resolve("ollama:qwen3") == ModelRef("ollama", "qwen3")
    assert registry.resolve("openai") == ModelRef("openai", "gpt-5.4-mini")


def test_text_only_models_from_settings_and_the_providers_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    providers = tmp_path / "providers.toml"
    providers.write_text(
        "[providers.ollama]\n"
        'base_url = "http://127.0.0.1:11434/v1"\n'
        'models = ["llama3.2", "llava"]\n'
        'text_only_models = ["llama*"]\n'
    )
    registry = build_registry(
        _settings(
            tmp_path,
            openai_api_key="o",
            openai_models=["gpt-5.4-mini", "gpt-3.5-turbo", "gpt-4-base"],
            # Any case; without a provider, the model id of any provider.
            text_only_models=["OpenAI:GPT-3.5*", "gpt-4-base", "nowhere:*"],
            providers_file=providers,
        )
    )
    reads = {ref.id: registry.reads_images(ref) for ref in registry.available()}
    assert reads == {
        "openai:gpt-5.4-mini": True,
        "openai:gpt-3.5-turbo": False,
        "openai:gpt-4-base": False,
        "ollama:llama3.2": False,
        "ollama:llava": True,
    }
    unmatched = [r for r in caplog.records if r.getMessage().startswith("a text-only model")]
    assert [r.__dict__["pattern"] for r in unmatched] == ["nowhere:*"]  # a typo is told


def _t(role: str, content: str, status: str = "complete") -> StoredTurn:
    return StoredTurn(role, content, status)


def test_clean_history_drops_broken_turns() -> None:
    history = [
        _t("user", "q1"),
        _t("assistant", "a1"),
        _t("user", "q2"),
        _t("assistant", "partial", "error"),
        _t("user", "q3"),
        _t("user", "q4"),
        _t("assistant", "", "stopped"),
        _t("system", "be terse"),
        _t("user", "q5"),
        _t("assistant", "a5 cut short", "stopped"),
        _t("user", "q6"),
        _t("assistant", "", "streaming"),
    ]
    assert clean_history(history) == [
        ChatTurn("user", "q1"),
        ChatTurn("assistant", "a1"),
        ChatTurn("user", "q5"),
        ChatTurn("assistant", "a5 cut short"),
    ]


def test_fit_to_budget_drops_oldest_exchanges_first() -> None:
    history = [
        ChatTurn("user" if i % 2 == 0 else "assistant", f"turn {i} " + "x" * 300) for i in range(10)
    ]
    per_turn = estimate_tokens(history[0].content)
    budget = estimate_tokens("new question") + 4 * per_turn + 2
    turns = fit_to_budget(history, "new question", system=None, budget_tokens=budget)
    assert [t.content[:6] for t in turns[:-1]] == ["turn 6", "turn 7", "turn 8", "turn 9"]
    assert turns[0].role == "user"
    assert turns[-1] == ChatTurn("user", "new question")


def test_fit_to_budget_refuses_prompt_larger_than_context() -> None:
    with pytest.raises(InvalidInput):
        fit_to_budget([], "x" * 3000, system=None, budget_tokens=500)


def test_token_estimate_is_conservative_for_cjk() -> None:
    assert estimate_tokens("你好世界" * 10) >= 40


def test_retry_delay_honours_retry_after_and_caps_it() -> None:
    policy = RetryPolicy(max_retry_after_s=5)
    assert policy.delay(0, ProviderRateLimited("x", retry_after=2)) == 2
    assert policy.delay(0, ProviderRateLimited("x", retry_after=60)) == 5
    for attempt in range(4):
        delay = policy.delay(attempt, ProviderUnavailable("x"))
        ceiling = min(policy.max_delay_s, policy.base_delay_s * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_redact_hides_key_like_strings() -> None:
    text = redact("bad key sk-abcdefghijklmnop1234 and AIzaSyA1234567890abcdefghijklmnop")
    assert "sk-abc" not in text
    assert "AIza" not in text
