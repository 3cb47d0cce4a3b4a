"""A model the operator marks as reading no images (OMNICHAT_TEXT_ONLY_MODELS): an image sent
to it is a 400 naming the part, and a text-only fallback is skipped for an image, never sent
the request without it."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from omnichat.app import create_app
from omnichat.settings import Settings
from tests.conftest import ThreadedServer
from tests.fakes import Fail, FakeProviderServer, Reply
from tests.test_openai_api import api_key, sdk, user
from tests.test_v1_fidelity import MODELS, PNG_URL, _image_question

__all__ = ["api_key", "user"]  # fixtures, imported to be used here


@pytest.fixture(scope="module")
def text_only_server(llm_settings: Settings) -> Iterator[ThreadedServer]:
    """The LLM test server, with OpenAI's model and Anthropic's fallback (claude-haiku) marked
    text-only; it shares the database, so the API keys of ``llm_server`` work here."""
    settings = llm_settings.model_copy(
        update={"text_only_models": ["openai:gpt-5.4-*", "anthropic:claude-haiku*"]}
    )
    with ThreadedServer(create_app(settings)) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True])
async def test_an_image_to_a_text_only_model_is_a_400_naming_the_part(
    text_only_server: ThreadedServer,
    api_key: str,
    fake_provider: FakeProviderServer,
    stream: bool,
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        await sdk(text_only_server, api_key).chat.completions.create(
            model=MODELS["openai"], messages=_image_question(PNG_URL), stream=stream
        )
    body = error.value.body
    assert isinstance(body, dict)
    assert body["param"] == "messages[0].content[1]"
    assert "reads text only" in body["message"]
    assert fake_provider.requests == []


async def test_text_goes_to_a_text_only_model_and_images_to_the_others(
    text_only_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    fake_provider.script(Reply("plain"), Reply("a pixel"))
    client = sdk(text_only_server, api_key)
    plain = await client.chat.completions.create(
        model=MODELS["openai"], messages=[{"role": "user", "content": "Hi"}]
    )
    assert plain.choices[0].message.content == "plain"
    seen = await client.chat.completions.create(
        model=MODELS["anthropic"], messages=_image_question(PNG_URL)
    )
    assert seen.choices[0].message.content == "a pixel"
    assert len(fake_provider.requests_for("anthropic")) == 1


async def test_a_text_only_fallback_is_skipped_for_an_image_and_used_for_text(
    text_only_server: ThreadedServer, api_key: str, fake_provider: FakeProviderServer
) -> None:
    client = sdk(text_only_server, api_key)
    # Gemini reads images; its failure would fall back to claude-haiku, which reads none.
    fake_provider.script(Fail(400))
    with pytest.raises(openai.APIStatusError) as error:
        await client.chat.completions.create(
            model=MODELS["gemini"], messages=_image_question(PNG_URL)
        )
    assert error.value.status_code == 502
    assert fake_provider.requests_for("anthropic") == []  # skipped, not sent without the image
    fake_provider.script(Fail(400), Reply("from the fallback"))
    text = await client.chat.completions.create(
        model=MODELS["gemini"], messages=[{"role": "user", "content": "Hi"}]
    )
    assert text.choices[0].message.content == "from the fallback"
    assert len(fake_provider.requests_for("anthropic")) == 1
