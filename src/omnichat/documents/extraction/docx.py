"""DOCX: the archive is checked against zip bombs and unsafe entries before anything is
unpacked, then the body is rendered as Markdown-like text (headings, lists, tables)."""

from __future__ import annotations

import logging
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import docx
from docx.document import Document
from docx.table import Table
from docx.text.paragraph import Paragraph

from omnichat.documents.extraction.errors import (
    DocumentTooLarge,
    NoExtractableText,
    UnreadableDocument,
    UnsafeArchive,
)
from omnichat.documents.extraction.text import clean_text
from omnichat.errors import AppError
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage

logger = logging.getLogger("omnichat.documents.docx")

# Small entries compress well legitimately (XML of repeated styles); only big ones are judged.
RATIO_CHECK_MIN_BYTES = 1024 * 1024
_DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")
_PATH_SEPARATORS = re.compile(r"[\\/]")
_HEADING_STYLE = re.compile(r"^Heading ([1-9])$")
_LIST_STYLE = re.compile(r"^List (Bullet|Number)(?: ([2-9]))?$")
CORRUPT_DETAIL = "The DOCX file is corrupt or malformed and could not be read"


@dataclass(frozen=True)
class DocxLimits:
    max_uncompressed_bytes: int
    max_entries: int
    max_compression_ratio: float


def extract_docx(path: Path, limits: DocxLimits) -> ExtractedDocument:
    """The document's text as one page. Blocking (pure Python): run it in a thread."""
    check_archive(path, limits)
    try:
        text = render_document(docx.Document(str(path)))
    except AppError:
        raise
    except Exception as exc:  # any failure to parse an untrusted file is the file's fault
        logger.info("unreadable DOCX: %s: %s", type(exc).__name__, exc)
        raise UnreadableDocument(CORRUPT_DETAIL) from exc
    text = clean_text(text)
    if not text:
        raise NoExtractableText("The DOCX document contains no text")
    return ExtractedDocument(kind=DocumentKind.DOCX, pages=[ExtractedPage(number=1, text=text)])


def check_archive(path: Path, limits: DocxLimits) -> None:
    """Refuse zip bombs and entries escaping the archive, reading only the central directory.
    (``zipfile`` never inflates an entry past its declared size, so the declared sizes hold.)"""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableDocument(CORRUPT_DETAIL) from exc
    if len(entries) > limits.max_entries:
        raise DocumentTooLarge(
            f"The DOCX archive has {len(entries)} entries; at most {limits.max_entries} are allowed"
        )
    total_bytes = 0
    for entry in entries:
        if _is_unsafe_entry(entry):
            raise UnsafeArchive(
                f"The DOCX file contains an unsafe entry ({entry.filename!r}) and was refused"
            )
        total_bytes += entry.file_size
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > RATIO_CHECK_MIN_BYTES and ratio > limits.max_compression_ratio:
            raise DocumentTooLarge(
                "The DOCX file looks like a zip bomb: an entry expands "
                f"{ratio:.0f}-fold (at most {limits.max_compression_ratio:g} is allowed)"
            )
    if total_bytes > limits.max_uncompressed_bytes:
        raise DocumentTooLarge(
            f"The DOCX file unpacks to {total_bytes} bytes; "
            f"at most {limits.max_uncompressed_bytes} are allowed"
        )


def _is_unsafe_entry(entry: zipfile.ZipInfo) -> bool:
    name = entry.filename
    if name.startswith(("/", "\\")) or _DRIVE_PREFIX.match(name):
        return True
    if ".." in _PATH_SEPARATORS.split(name):
        return True
    return stat.S_ISLNK(entry.external_attr >> 16)


def render_document(document: Document) -> str:
    """Body paragraphs and tables in document order, as Markdown-like blocks."""
    renderer = _Renderer(document)
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            renderer.add_table(block)
        else:
            renderer.add_paragraph(block)
    return renderer.text()


class _Renderer:
    def __init__(self, document: Document) -> None:
        self._document = document
        self._blocks: list[str] = []
        self._list_lines: list[str] = []  # the list being collected, one item per line
        self._numbers: dict[int, int] = {}  # next number per nesting level of a numbered list
        self._bullet_formats: dict[tuple[int, int], bool] = {}

    def text(self) -> str:
        self._end_list()
        return "\n\n".join(self._blocks)

    def add_paragraph(self, paragraph: Paragraph) -> None:
        text = paragraph.text.strip()
        if not text:
            return
        style = paragraph.style.name if paragraph.style is not None else ""
        heading = _HEADING_STYLE.match(style or "")
        if heading or style == "Title":
            self._end_list()
            self._blocks.append("#" * (int(heading.group(1)) if heading else 1) + " " + text)
            return
        list_item = self._list_kind(paragraph, style or "")
        if list_item is None:
            self._end_list()
            self._blocks.append(text)
            return
        bullet, level = list_item
        for deeper in [lvl for lvl in self._numbers if lvl > level]:
            del self._numbers[deeper]
        if bullet:
            marker = "-"
        else:
            number = self._numbers.get(level, 1)
            self._numbers[level] = number + 1
            marker = f"{number}."
        self._list_lines.append(f"{'  ' * level}{marker} {text}")

    def add_table(self, table: Table) -> None:
        self._end_list()
        rows: list[list[str]] = []
        for row in table.rows:
            cells: list[str] = []
            previous = None
            for cell in row.cells:
                if cell._tc is previous:  # a merged cell is returned once per grid column
                    continue
                previous = cell._tc
                cells.append(" ".join(cell.text.split()).replace("|", "\\|"))
            if any(cells):
                rows.append(cells)
        if not rows:
            return
        lines = ["| " + " | ".join(cells) + " |" for cells in rows]
        lines.insert(1, "|" + " --- |" * len(rows[0]))
        self._blocks.append("\n".join(lines))

    def _end_list(self) -> None:
        if self._list_lines:
            self._blocks.append("\n".join(self._list_lines))
        self._list_lines = []
        self._numbers = {}

    def _list_kind(self, paragraph: Paragraph, style: str) -> tuple[bool, int] | None:
        """(is a bullet, nesting level) for a list item, else None."""
        by_style = _LIST_STYLE.match(style)
        if by_style:
            return by_style.group(1) == "Bullet", int(by_style.group(2) or 1) - 1
        num_ids = paragraph._p.xpath("./w:pPr/w:numPr/w:numId/@w:val")
        levels = paragraph._p.xpath("./w:pPr/w:numPr/w:ilvl/@w:val")
        try:
            num_id = int(num_ids[0]) if num_ids else 0
            level = min(int(levels[0]), 8) if levels else 0
        except ValueError:
            return None
        if num_id == 0:  # numId 0 switches numbering off
            return None
        return self._is_bullet(num_id, level), level

    def _is_bullet(self, num_id: int, level: int) -> bool:
        key = (num_id, level)
        if key not in self._bullet_formats:
            self._bullet_formats[key] = self._lookup_is_bullet(num_id, level)
        return self._bullet_formats[key]

    def _lookup_is_bullet(self, num_id: int, level: int) -> bool:
        try:
            definitions = self._document.part.numbering_part.element
            abstract_id = definitions.num_having_numId(num_id).abstractNumId.val
        except (KeyError, AttributeError, NotImplementedError):
            return True
        formats = definitions.xpath(
            f'./w:abstractNum[@w:abstractNumId="{int(abstract_id)}"]'
            f'/w:lvl[@w:ilvl="{int(level)}"]/w:numFmt/@w:val'
        )
        return not formats or formats[0] == "bullet"
