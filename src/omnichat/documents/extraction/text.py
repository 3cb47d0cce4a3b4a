"""Plain text and Markdown: decoding, the binary-or-text test, and newline clean-up."""

from __future__ import annotations

import codecs
import re
from itertools import islice
from pathlib import Path

from omnichat.documents.extraction.errors import (
    ACCEPTED_TYPES,
    NoExtractableText,
    UnsupportedDocumentType,
)
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage

# More C0/C1 control characters than this share of the text means a binary file.
MAX_CONTROL_SHARE = 0.01
# C0/C1 control characters other than the whitespace ones (tab, newlines, form feed).
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# Control characters to drop from extracted text (all but tab and newline).
_STRAY_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\u2028|\u2029")

NOT_TEXT_DETAIL = (
    f"Unsupported file type; upload a {ACCEPTED_TYPES} file "
    "(text files must be UTF-8, or UTF-16 with a byte-order mark)"
)


def text_encoding(data: bytes) -> str:
    """The codec for ``data``: UTF-16 only when it starts with a BOM, otherwise UTF-8
    (``utf-8-sig`` drops a UTF-8 BOM if there is one)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8-sig"


def looks_like_text(head: bytes, *, complete: bool) -> bool:
    """Whether ``head`` (the file's first bytes, or all of it when ``complete``) decodes as text
    with no NULs and few control characters."""
    decoder = codecs.getincrementaldecoder(text_encoding(head))()
    try:
        # final=False tolerates a multi-byte character cut off at the end of a prefix.
        sample = decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return is_plausible_text(sample)


def is_plausible_text(text: str) -> bool:
    if "\x00" in text:
        return False
    allowed = int(len(text) * MAX_CONTROL_SHARE)
    # Stops at the first control character over the allowance.
    return next(islice(_BINARY_CONTROLS.finditer(text), allowed, None), None) is None


def clean_text(text: str) -> str:
    """Unix newlines, no stray control characters, no trailing whitespace."""
    text = _LINE_BREAKS.sub("\n", text)
    return _STRAY_CONTROLS.sub("", text).strip()


def extract_text(path: Path, kind: DocumentKind) -> ExtractedDocument:
    """Decode a TXT or MD file as one page. Blocking: run it in a thread."""
    data = path.read_bytes()
    try:
        text = data.decode(text_encoding(data))
    except UnicodeDecodeError as exc:
        raise UnsupportedDocumentType(NOT_TEXT_DETAIL) from exc
    # The sniffer only saw the start of the file; binary data may follow.
    if not is_plausible_text(text):
        raise UnsupportedDocumentType(NOT_TEXT_DETAIL)
    text = clean_text(text)
    if not text:
        raise NoExtractableText("The text file contains only whitespace")
    return ExtractedDocument(kind=kind, pages=[ExtractedPage(number=1, text=text)])
