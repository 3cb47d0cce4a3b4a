"""Tables as Markdown (GitHub-flavoured pipe tables), shared by the XLSX, CSV, PPTX and HTML
readers, and the character budget every reader spends as it goes.

A table's first non-empty row is its header. Rows with no value and columns with no value in
any row are left out. A long table is cut into blocks of about ``TABLE_BLOCK_CHARS``, each
starting with the header again, so that every chunk the chunker makes of it still says what its
columns are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from omnichat.documents.extraction.errors import DocumentTooLarge

TABLE_BLOCK_CHARS = 600


def too_many_chars(max_chars: int) -> DocumentTooLarge:
    return DocumentTooLarge(
        f"The document has more than {max_chars} characters of text; "
        f"at most {max_chars} are accepted"
    )


class TextBudget:
    """Counts the characters a reader has produced; ``spend`` raises ``DocumentTooLarge`` as
    soon as they pass ``max_chars``, before the reader does any more work."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.used = 0

    def spend(self, chars: int) -> None:
        self.used += chars
        if self.used > self.max_chars:
            raise too_many_chars(self.max_chars)


def cell_text(text: str) -> str:
    """One line, whitespace collapsed, pipes escaped."""
    text = " ".join(text.split())
    return text.replace("|", "\\|") if "|" in text else text


def markdown_table(rows: Iterable[Sequence[str]], *, block_chars: int = TABLE_BLOCK_CHARS) -> str:
    """``rows`` (cell texts, as ``cell_text`` makes them) as Markdown; ``""`` when no cell has
    a value. Rows shorter than the widest are padded."""
    kept = [row for row in rows if any(row)]
    if not kept:
        return ""
    width = max(map(len, kept))
    padded = [row if len(row) == width else [*row, *[""] * (width - len(row))] for row in kept]
    columns = [c for c, column in enumerate(zip(*padded, strict=True)) if any(column)]
    if len(columns) < width:
        padded = [[row[c] for c in columns] for row in padded]
    lines = ["| " + " | ".join(row) + " |" for row in padded]
    head = lines[0] + "\n|" + " --- |" * len(columns)
    blocks: list[str] = []
    block: list[str] = []
    size = 0
    for line in lines[1:]:
        if block and size + len(line) > block_chars:
            blocks.append("\n".join([head, *block]))
            block, size = [], 0
        block.append(line)
        size += len(line) + 1
    blocks.append("\n".join([head, *block]))
    return "\n\n".join(blocks)
