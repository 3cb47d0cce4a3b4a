"""Plain text and Markdown: decoding in any encoding, the binary-or-text test, newline clean-up.

The encoding rule, the same for the sniffer (on the first ``TEXT_SAMPLE_BYTES``) and for the
extractors of TXT, MD, CSV and HTML (on the whole file):

1. a byte-order mark decides: UTF-8, UTF-16 or UTF-32 (``codecs`` BOMs);
2. otherwise bytes that are valid UTF-8 are UTF-8 (the fast path: most files, and all ASCII);
3. otherwise a file with NUL bytes is binary (UTF-16 without a BOM is refused, as before);
4. otherwise the charset declared by an HTML document's ``<meta charset>`` if it decodes;
5. otherwise charset-normalizer (https://github.com/jawah/charset_normalizer) lists the
   decodings that read as text, among the encodings documents are written in today
   (``GUESSED``: the Windows code pages, the ISO 8859 ones they extend, KOI8, Shift-JIS,
   EUC-JP, ISO-2022-JP, GB18030, Big5, EUC-KR; never DOS or EBCDIC code pages, nor UTF-16/32
   without a BOM), and of those:
   a. a Japanese decoding whose non-ASCII characters are at least ``MIN_HIRAGANA_SHARE``
      hiragana wins (short Japanese text otherwise passes for Korean);
   b. else the windows-1252 decoding wins unless another one fits a language better
      (charset-normalizer's coherence): short Western text is ambiguous between the
      single-byte code pages, and windows-1252 (which reads latin-1 text too) is by far the
      most common of them, as browsers assume (WHATWG Encoding Standard);
   c. else charset-normalizer's best.

Whatever decodes must then read as text: no NUL, and at most ``MAX_CONTROL_SHARE`` of
control characters; otherwise the file is binary (415). The extractor decodes the whole file
with the encoding found for its sample, and looks again at the whole file only when that fails.
"""

from __future__ import annotations

import codecs
import re
from itertools import islice
from pathlib import Path

from charset_normalizer import from_bytes

from omnichat.documents.extraction.errors import (
    ACCEPTED_TYPES,
    NoExtractableText,
    UnsupportedDocumentType,
)
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage

# Enough to judge whether a file is text (and of which kind) without reading all of it.
TEXT_SAMPLE_BYTES = 64 * 1024
# More C0/C1 control characters than this share of the text means a binary file.
MAX_CONTROL_SHARE = 0.01
# C0/C1 control characters other than the whitespace ones (tab, newlines, form feed).
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# Control characters to drop from extracted text (all but tab and newline).
_STRAY_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\u2028|\u2029")

# Longest first: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
GUESSED = [
    *("cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258"),
    *("cp874", "latin_1", "iso8859_2", "iso8859_5", "iso8859_7", "iso8859_8", "iso8859_9"),
    *("iso8859_15", "koi8_r", "koi8_u", "cp932", "shift_jis", "euc_jp", "iso2022_jp"),
    *("gb18030", "big5", "cp949", "euc_kr"),
]
WESTERN = "cp1252"
_JAPANESE = frozenset(
    {"cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004"}
    | {"euc_jisx0213", "iso2022_jp"}
)
MIN_HIRAGANA_SHARE = 0.2
BOUNDARY_SEARCH_BYTES = 1024
_HIRAGANA = re.compile("[\u3041-\u309f]")
_NON_ASCII = re.compile("[^\x00-\x7f]")

NOT_TEXT_DETAIL = (
    f"Unsupported file type; upload a {ACCEPTED_TYPES} file (text must be UTF-8, UTF-16 with "
    "a byte-order mark, or a legacy encoding such as Windows-1252 or Shift-JIS, without binary "
    "data)"
)


def bom_encoding(data: bytes) -> str | None:
    return next((name for bom, name in _BOMS if data.startswith(bom)), None)


def decode_text(
    data: bytes, *, complete: bool = True, declared: str | None = None
) -> tuple[str, str] | None:
    """``(text, encoding)`` of ``data`` by the module's rule, or ``None`` when it is not text.
    ``complete=False``: ``data`` is a file's first bytes, maybe cut inside a character."""
    encoding = bom_encoding(data)
    if encoding is None:
        encoding = _guess_encoding(data, complete=complete, declared=declared)
    if encoding is None:
        return None
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        # final=False tolerates a multi-byte character cut off at the end of a prefix.
        text = decoder.decode(data, final=complete)
    except UnicodeDecodeError:
        return None
    return (text, encoding) if is_plausible_text(text) else None


def _guess_encoding(data: bytes, *, complete: bool, declared: str | None) -> str | None:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=complete)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if b"\x00" in data:
        return None
    for sample in [data] if complete else _whole_characters(data):
        if declared and _decodes(sample, declared):
            return declared
        encoding = _detect_legacy(sample)
        if encoding is not None:
            return encoding
    return None


def _whole_characters(data: bytes) -> list[bytes]:
    """Prefixes of a sample cut from a longer file that may end on a whole character: up to
    its last byte below 0x40 (ASCII space, digits, punctuation, newlines; in the ASCII-based
    legacy encodings such a byte is never part of a multi-byte character) when there is one
    near the end, else the sample less 0 to 3 bytes (their characters are at most 4 bytes)."""
    tail = data[-BOUNDARY_SEARCH_BYTES:]
    for index in range(len(tail) - 1, -1, -1):
        if tail[index] < 0x40:
            return [data[: len(data) - len(tail) + index + 1]]
    return [data[: len(data) - drop] for drop in range(4)]


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _detect_legacy(data: bytes) -> str | None:
    """Steps 5a-c of the module's rule."""
    matches = list(from_bytes(data, cp_isolation=GUESSED))
    if not matches:
        return None
    for match in matches:
        if _JAPANESE.intersection(match.could_be_from_charset) and _is_japanese(str(match)):
            return match.encoding
    top = max(match.coherence for match in matches)
    for match in matches:
        if WESTERN in match.could_be_from_charset and match.coherence >= top - 1e-6:
            return WESTERN
    return matches[0].encoding  # charset-normalizer's best


def _is_japanese(text: str) -> bool:
    non_ascii = len(_NON_ASCII.findall(text))
    return bool(non_ascii) and len(_HIRAGANA.findall(text)) >= MIN_HIRAGANA_SHARE * non_ascii


def decode_file(data: bytes, *, declared: str | None = None) -> str:
    """The whole file's text; ``UnsupportedDocumentType`` (415) when it is not text. The
    encoding is the one found for the file's sample (as the sniffer found it), or, when the
    rest of the file does not decode with it, the one found for the whole file."""
    head = data[:TEXT_SAMPLE_BYTES]
    sampled = decode_text(head, complete=len(data) <= len(head), declared=declared)
    if sampled is not None and len(data) <= len(head):
        return sampled[0]
    if sampled is not None:
        try:
            text = data.decode(sampled[1])
        except UnicodeDecodeError:
            pass
        else:
            if is_plausible_text(text):
                return text
    whole = decode_text(data, declared=declared)
    if whole is None:
        raise UnsupportedDocumentType(NOT_TEXT_DETAIL)
    return whole[0]


def sample_text(head: bytes, *, complete: bool, declared: str | None = None) -> str | None:
    """The text of a file's first bytes (``complete``: the whole file), ``None`` if binary."""
    decoded = decode_text(head, complete=complete, declared=declared)
    return None if decoded is None else decoded[0]


def looks_like_text(head: bytes, *, complete: bool) -> bool:
    """Whether ``head`` (the file's first bytes, or all of it when ``complete``) decodes as
    text with no NULs and few control characters."""
    return sample_text(head, complete=complete) is not None


def read_sample(path: Path) -> tuple[bytes, bool]:
    """The file's first ``TEXT_SAMPLE_BYTES``, and whether that is all of it."""
    with path.open("rb") as handle:
        head = handle.read(TEXT_SAMPLE_BYTES)
        complete = not handle.read(1)
    return head, complete


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
    """Decode a TXT or MD file (in any encoding, by the module's rule) as one page.
    Blocking: run it in a thread."""
    text = clean_text(decode_file(path.read_bytes()))
    if not text:
        raise NoExtractableText("The text file contains only whitespace")
    return ExtractedDocument(kind=kind, pages=[ExtractedPage(number=1, text=text)])
