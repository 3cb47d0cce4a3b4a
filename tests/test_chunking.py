"""Chunking with the real all-MiniLM-L6-v2 tokenizer."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest

from omnichat.rag.chunking import BLOCK_CHARS, Chunker, blocks
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage
from omnichat.settings import Settings

WORDS = [
    *("the", "of", "retrieval", "augmented", "generation", "embeddings", "vector", "index"),
    *("antidisestablishment", "pneumonoultramicroscopic", "café", "naïve", "Zürich"),
    *("x-ray", "re-entry", "東京", "天気", "😀", "🚀"),
]


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    return Chunker(max_tokens=64, overlap_tokens=8)


def prose(word_count: int, seed: int = 0) -> str:
    """Sentences in paragraphs, from a vocabulary mixing long words, CJK and emoji."""
    rng = random.Random(seed)
    sentences = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20))).capitalize() + "."
        for _ in range(word_count // 12)
    ]
    paragraphs = [" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5)]
    return "\n\n".join(paragraphs)


def document(*pages: str) -> ExtractedDocument:
    return ExtractedDocument(
        kind=DocumentKind.PDF,
        pages=[ExtractedPage(number, text) for number, text in enumerate(pages, start=1)],
    )


def test_counts_tokens_without_the_128_token_cap_in_tokenizer_json(chunker: Chunker) -> None:
    assert chunker.count_tokens("hello") == 1
    assert chunker.count_tokens("") == 0
    assert chunker.count_tokens("hello " * 1000) == 1000


@pytest.mark.parametrize("seed", range(4))
def test_every_chunk_fits_and_is_counted_exactly(chunker: Chunker, seed: int) -> None:
    chunks = chunker.chunk(document(prose(2000, seed), prose(700, seed + 10)))

    assert len(chunks) > 10
    for chunk in chunks:
        assert chunk.token_count == chunker.count_tokens(chunk.text)
        assert 0 < chunk.token_count <= 64
        assert chunk.text.strip() == chunk.text
        assert chunk.text


def test_text_without_any_spaces_still_fits(chunker: Chunker) -> None:
    text = "".join(random.Random(1).choice(WORDS) for _ in range(2000))

    chunks = chunker.chunk(document(text))

    assert all(chunk.token_count <= 64 for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks).count("東京") >= text.count("東京")


def test_settings_sized_chunks_fit(chunker: Chunker) -> None:
    settings = Settings()
    sized = Chunker.from_settings(settings)

    chunks = sized.chunk(document(prose(5000)))

    assert max(chunk.token_count for chunk in chunks) <= settings.chunk_tokens
    # Most of the room is used: chunks are not needlessly small.
    assert max(chunk.token_count for chunk in chunks) > settings.chunk_tokens * 0.7


def test_consecutive_chunks_overlap(chunker: Chunker) -> None:
    chunks = chunker.chunk(document(prose(1500)))

    assert len(chunks) > 5
    for previous, current in pairwise(chunks):
        shared = overlap_of(previous.text, current.text)
        assert shared.strip(), (previous.text, current.text)
        assert chunker.count_tokens(shared) <= 8


def overlap_of(previous: str, current: str) -> str:
    """The longest start of ``current`` that ``previous`` ends with."""
    for length in range(min(len(previous), len(current)), 0, -1):
        if previous.endswith(current[:length]):
            return current[:length]
    return ""


def test_without_overlap_the_chunks_are_the_text_in_order() -> None:
    text = prose(1500)

    chunks = Chunker(max_tokens=64, overlap_tokens=0).chunk(document(text))

    position = 0
    for chunk in chunks:
        position = text.index(chunk.text, position) + len(chunk.text)
    # Only the whitespace the text was split at is dropped.
    assert "".join("".join(chunk.text.split()) for chunk in chunks) == "".join(text.split())


def test_chunks_keep_their_page_and_ordinals_run_across_pages(chunker: Chunker) -> None:
    pages = [prose(300, 1), "", "   \n ", prose(300, 2), "A short last page."]

    chunks = chunker.chunk(document(*pages))

    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    assert {chunk.page for chunk in chunks} == {1, 4, 5}
    assert [chunk.page for chunk in chunks] == sorted(chunk.page for chunk in chunks)
    for chunk in chunks:
        assert chunk.text in pages[chunk.page - 1]
    assert chunks[-1].text == "A short last page."


def test_unicode_survives(chunker: Chunker) -> None:
    text = "東京の天気は晴れです。 Emoji 😀🚀 stay intact, as do Ελληνικά and naïve café."

    (chunk,) = chunker.chunk(document(text))

    assert chunk.text == text


def test_an_empty_document_has_no_chunks(chunker: Chunker) -> None:
    assert chunker.chunk(document("", " \n\t ")) == []


def test_chunking_from_many_threads_gives_the_same_result(chunker: Chunker) -> None:
    documents = [document(prose(800, seed)) for seed in range(8)]
    expected = [chunker.chunk(doc) for doc in documents]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(chunker.chunk, documents)) == expected


@pytest.mark.parametrize(("max_tokens", "overlap"), [(1, 0), (64, 64), (64, -1)])
def test_refuses_impossible_sizes(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="tokens"):
        Chunker(max_tokens=max_tokens, overlap_tokens=overlap)


def test_blocks_cut_at_the_largest_break_and_lose_nothing() -> None:
    text = "a" * 20 + "\n\nline\nb " + "word " * 40
    pieces = blocks(text, size=32)
    assert "".join(pieces) == text
    assert all(len(piece) <= 32 for piece in pieces)
    assert pieces[0] == "a" * 20 + "\n\n"  # the paragraph break, not the line or a space
    assert blocks("x" * 70, size=32) == ["x" * 32, "x" * 32, "x" * 6]  # no break: cut at size


def test_a_page_longer_than_a_block_is_chunked_in_blocks_with_nothing_lost() -> None:
    text = prose(30_000, seed=3)  # ~200 KB: several blocks
    assert len(text) > 2 * BLOCK_CHARS
    chunks = Chunker(max_tokens=64, overlap_tokens=0).chunk(document(text))
    assert all(chunk.token_count <= 64 for chunk in chunks)
    assert "".join("".join(chunk.text.split()) for chunk in chunks) == "".join(text.split())
    # One-character tokens with no break at all still come out in fitting chunks.
    dense = Chunker(max_tokens=64).chunk(document("&" * (BLOCK_CHARS + 500)))
    assert all(chunk.token_count <= 64 for chunk in dense)
