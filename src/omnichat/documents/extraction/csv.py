"""CSV and TSV (RFC 4180, read with the stdlib ``csv`` module): one Markdown table (``tables``)
on one page, decoded by the encoding rule of ``text`` (cp1252 exports from Excel included).

A file is a table when its name ends in ``.csv`` or ``.tsv`` (the name only picks this flavour
of a file that is text anyway, as ``.md`` picks Markdown) and ``table_delimiter`` finds a
delimiter for its first rows: of comma, semicolon, tab and pipe, the one under which the first
non-empty row has at least two fields and at least ``MIN_CONSISTENT_SHARE`` of the first
``SAMPLE_ROWS`` non-empty rows have as many fields as it (ties: most columns, then that order).
The sniffer and the reader decide it on the same sample, the file's first ``TEXT_SAMPLE_BYTES``.
"""

from __future__ import annotations

import csv
import io
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from omnichat.documents.extraction.errors import NoExtractableText, UnreadableDocument
from omnichat.documents.extraction.tables import (
    TextBudget,
    cell_text,
    markdown_table,
    too_many_chars,
)
from omnichat.documents.extraction.text import decode_file, read_sample, sample_text
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage

if TYPE_CHECKING:
    from omnichat.documents.extraction.parse import Deadline

TABLE_SUFFIXES = (".csv", ".tsv")
DELIMITERS = (",", ";", "\t", "|")
SAMPLE_ROWS = 100
MIN_CONSISTENT_SHARE = 0.8
# Rows read between two deadline checks.
CHECK_EVERY_ROWS = 1000


def is_table_name(filename: str | None) -> bool:
    return bool(filename) and str(filename).lower().endswith(TABLE_SUFFIXES)


def table_delimiter(sample: str, *, complete: bool) -> str | None:
    """The delimiter of the table ``sample`` (a file's first characters; ``complete``: all of
    it) starts, or ``None`` when it does not read as a table with two or more columns."""
    if not complete:  # the last line may be cut short
        sample = sample[: sample.rfind("\n") + 1]
    best: tuple[float, int, int] | None = None
    choice = None
    for order, delimiter in enumerate(DELIMITERS):
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
        try:
            rows = [row for row in islice(reader, SAMPLE_ROWS * 2) if any(f.strip() for f in row)]
        except csv.Error:
            continue
        rows = rows[:SAMPLE_ROWS]
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        share = sum(len(row) == width for row in rows) / len(rows)
        score = (share, width, -order)
        if share >= MIN_CONSISTENT_SHARE and (best is None or score > best):
            best, choice = score, delimiter
    return choice


def sample_delimiter(path: Path) -> str | None:
    """``table_delimiter`` of the file's sample, decoded as the sniffer decodes it."""
    head, complete = read_sample(path)
    sample = sample_text(head, complete=complete)
    return None if sample is None else table_delimiter(sample, complete=complete)


def extract_csv(path: Path, max_chars: int, deadline: Deadline) -> ExtractedDocument:
    """The table as Markdown, one page. Blocking: run it in a sandbox worker."""
    delimiter = sample_delimiter(path)
    if delimiter is None:
        raise UnreadableDocument("The CSV file does not read as a table of two or more columns")
    text = decode_file(path.read_bytes())
    budget = TextBudget(max_chars)
    rows: list[list[str]] = []
    # The csv module refuses a field over 128 KiB by default (a long note in one cell is no
    # malformed file); one over the document's whole text budget is too large, as a document.
    csv.field_size_limit(max_chars + 1)
    try:
        for number, row in enumerate(
            csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        ):
            if number % CHECK_EVERY_ROWS == 0:
                deadline.check()
            cells = [cell_text(field) for field in row]
            budget.spend(sum(map(len, cells)) + 3 * (len(cells) - cells.count("")))
            rows.append(cells)
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise too_many_chars(max_chars) from None
        raise UnreadableDocument(f"The CSV file is malformed: {exc}") from exc
    table = markdown_table(rows)
    if not table:
        raise NoExtractableText("The CSV file has no values")
    return ExtractedDocument(kind=DocumentKind.CSV, pages=[ExtractedPage(number=1, text=table)])
