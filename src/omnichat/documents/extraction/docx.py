"""DOCX: the archive is checked against zip bombs and unsafe entries before anything is
unpacked, then every story a reader sees is rendered as Markdown-like text (headings, lists,
tables) in reading order: headers, the body, footnotes, endnotes, comments, footers.

The walk goes over the WordprocessingML itself (ECMA-376 Part 1, §17) rather than
python-docx's objects, which see only body paragraphs and tables: text inside content controls,
text boxes, tracked insertions, hyperlinks, fields, imported HTML or text (w:altChunk) and the
other stories would be lost."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from docx.document import Document
from docx.enum.style import WD_STYLE_TYPE
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.part import Part, XmlPart
from docx.oxml.ns import nsmap
from docx.oxml.parser import parse_xml

from omnichat.documents.extraction.archive import ArchiveLimits, check_archive
from omnichat.documents.extraction.errors import NoExtractableText, UnreadableDocument
from omnichat.documents.extraction.text import clean_text
from omnichat.documents.extraction.word_package import (
    CORRUPT_DETAIL,
    alt_chunk_text,
    open_word_document,
)
from omnichat.errors import AppError
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage

if TYPE_CHECKING:
    from omnichat.documents.extraction.parse import Deadline

logger = logging.getLogger("omnichat.documents.docx")

_HEADING_STYLE = re.compile(r"^Heading ([1-9])$")
_LIST_STYLE = re.compile(r"^List (Bullet|Number)(?: ([2-9]))?$")
# The deadline is checked once per this many XML elements walked.
DEADLINE_CHECK_EVERY = 2048


def extract_docx(
    path: Path, limits: ArchiveLimits, deadline: Deadline | None = None
) -> ExtractedDocument:
    """The document's text as one page. Blocking (pure Python): run it in a worker. Raises
    ``DocumentTooComplex`` once ``deadline`` passes."""
    check_archive(path, limits)
    try:
        text = render_document(open_word_document(path), deadline)
    except (AppError, MemoryError):  # the sandbox turns a MemoryError into DocumentTooComplex
        raise
    except Exception as exc:  # any failure to parse an untrusted file is the file's fault
        logger.info("unreadable DOCX: %s: %s", type(exc).__name__, exc)
        raise UnreadableDocument(CORRUPT_DETAIL) from exc
    text = clean_text(text)
    if not text:
        raise NoExtractableText("The DOCX document contains no text")
    return ExtractedDocument(kind=DocumentKind.DOCX, pages=[ExtractedPage(number=1, text=text)])


# -- the WordprocessingML walk -------------------------------------------------------------------


class _Xml(Protocol):
    """The part of lxml's element API the walk uses."""

    tag: object
    text: str | None

    def get(self, key: str, default: str | None = None) -> str | None: ...
    def find(self, path: str) -> _Xml | None: ...
    def getparent(self) -> _Xml | None: ...
    def iter(self, *tags: str) -> Iterator[_Xml]: ...
    def __iter__(self) -> Iterator[_Xml]: ...


def _w(name: str) -> str:
    return f"{{{nsmap['w']}}}{name}"


_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_ALTERNATE, _CHOICE, _FALLBACK = f"{_MC}AlternateContent", f"{_MC}Choice", f"{_MC}Fallback"
_R_ID, _MATH_T = f"{{{nsmap['r']}}}id", f"{{{nsmap['m']}}}t"
_P, _TBL, _TR, _TC, _T, _TXBX_CONTENT, _RUBY, _SECT_PR, _PPR, _VAL, _ID = map(
    _w, ["p", "tbl", "tr", "tc", "t", "txbxContent", "ruby", "sectPr", "pPr", "val", "id"]
)
_PSTYLE, _NUM_PR, _NUM_ID, _LEVEL = map(_w, ["pStyle", "numPr", "numId", "ilvl"])
_DELETED_ROW_PATH = f"{_w('trPr')}/{_w('del')}"
_V_MERGE_PATH, _GRID_SPAN_PATH = f"{_w('tcPr')}/{_w('vMerge')}", f"{_w('tcPr')}/{_w('gridSpan')}"
_CHARACTERS = {_w("tab"): "\t", _w("ptab"): "\t", _w("br"): "\n", _w("cr"): "\n"}
_CHARACTERS[_w("noBreakHyphen")] = "-"
# What no reader sees: tracked deletions and moves away (w:del, w:moveFrom, w:delText), field
# instructions (w:instrText; the field's result is what shows), and properties (no text).
_SKIPPED_NAMES = (
    "del moveFrom delText delInstrText instrText fldChar sym rPr pPr sectPr sdtPr sdtEndPr "
    "customXmlPr smartTagPr tblPr tblGrid trPr tcPr tblPrEx rubyPr"
)
_SKIPPED = frozenset(map(_w, _SKIPPED_NAMES.split()))
# Rows and cells may sit inside row- or cell-level content controls and custom XML.
_ROW_WRAPPERS = frozenset(map(_w, ["sdt", "sdtContent", "customXml"]))
_REFERENCES = {_w(f"{kind}Reference"): kind for kind in ["footnote", "endnote", "comment"]}
_REFERENCES[_w("commentRangeStart")] = "comment"
_NOTE_PARTS = {"footnote": RT.FOOTNOTES, "endnote": RT.ENDNOTES, "comment": RT.COMMENTS}
_OFF = frozenset({"0", "false", "off"})
_ALT_CHUNK = _w("altChunk")


def render_document(document: Document, deadline: Deadline | None = None) -> str:
    """Every story a reader sees, in reading order: the headers (w:hdr), the body (w:body),
    the footnotes (w:footnote), endnotes (w:endnote) and comments (w:comment) in the order the
    text refers to them, then the footers (w:ftr)."""
    reader = _Reader(document, deadline)
    stories = [reader.render(header) for header in reader.headers_or_footers("header")]
    stories.append(reader.render(document.element.body))
    for kind in ("footnote", "endnote", "comment"):  # comments may be anchored in notes
        stories.extend(reader.render(note) for note in reader.notes(kind))
    stories.extend(reader.render(footer) for footer in reader.headers_or_footers("footer"))
    return "\n\n".join(story for story in stories if story)


class _Reader:
    """What all the stories of one document share: styles, numbering, the notes referred to
    so far, the deadline."""

    def __init__(self, document: Document, deadline: Deadline | None) -> None:
        self._document = document
        self._deadline = deadline
        self._visited = 0
        styles = document.styles
        self._styles = {
            style.style_id: style.name or ""
            for style in styles
            if style.type == WD_STYLE_TYPE.PARAGRAPH
        }
        default = styles.default(WD_STYLE_TYPE.PARAGRAPH)
        self._default_style = (default.name or "") if default is not None else ""
        self._bullet_formats: dict[tuple[int, int], bool] = {}
        self.references: dict[str, dict[str, None]] = {kind: {} for kind in _NOTE_PARTS}

    def render(self, container: _Xml, *, plain: bool = False) -> str:
        if self._deadline is not None:
            self._deadline.check()
        flow = _Flow(self, plain=plain)
        flow.add_blocks(container)
        return flow.text()

    def tick(self) -> None:
        self._visited += 1
        if self._deadline is not None and self._visited % DEADLINE_CHECK_EVERY == 0:
            self._deadline.check()

    def inline(self, element: _Xml, out: list[str], boxes: list[_Xml]) -> None:
        """The text of a paragraph's content into ``out``: runs (w:r: w:t, m:t, w:tab, w:ptab,
        w:br, w:cr, w:noBreakHyphen) and whatever wraps them (w:hyperlink, w:smartTag,
        w:customXml, inline w:sdt, w:fldSimple, w:ins, w:moveTo, w:ruby, m:oMath, ...). Text
        boxes (w:txbxContent, in w:drawing or w:pict) go to ``boxes``; of an
        mc:AlternateContent only one branch is read."""
        for child in element:
            self.tick()
            tag = child.tag
            if tag in (_T, _MATH_T):
                out.append(child.text or "")
            elif tag in _CHARACTERS:
                out.append(_CHARACTERS[tag])
            elif tag == _TXBX_CONTENT:
                boxes.append(child)
            elif tag == _ALTERNATE:
                branch = _branch(child)
                if branch is not None:
                    self.inline(branch, out, boxes)
            elif tag in _REFERENCES:
                self.refer(child)
            elif tag == _RUBY:
                self._ruby(child, out, boxes)
            elif isinstance(tag, str) and tag not in _SKIPPED:
                self.inline(child, out, boxes)

    def _ruby(self, ruby: _Xml, out: list[str], boxes: list[_Xml]) -> None:
        """w:rubyBase, then its phonetic guide (w:rt) in parentheses."""
        base, guide = ruby.find(_w("rubyBase")), ruby.find(_w("rt"))
        if base is not None:
            self.inline(base, out, boxes)
        if guide is not None:
            pieces: list[str] = []
            self.inline(guide, pieces, boxes)
            if text := "".join(pieces).strip():
                out.append(f" ({text})")

    def refer(self, reference: _Xml) -> None:
        """Notes a w:footnoteReference, w:endnoteReference, w:commentReference or
        w:commentRangeStart, so that the note is read, once, in the order of reference."""
        note_id = reference.get(_ID)
        if note_id is not None:
            self.references[_REFERENCES[reference.tag]][note_id.strip()] = None  # type: ignore[index]

    def notes(self, kind: str) -> list[_Xml]:
        """The w:footnote, w:endnote or w:comment elements referred to so far, in that order;
        separator and continuation notes (``w:type`` other than normal) are layout, not text."""
        wanted = self.references[kind]
        if not wanted:
            return []
        try:
            part = self._document.part.part_related_by(_NOTE_PARTS[kind])
        except KeyError:
            return []
        by_id: dict[str, _Xml] = {}
        for note in _root(part):
            if note.tag == _w(kind) and note.get(_w("type"), "normal") == "normal":
                by_id.setdefault((note.get(_ID) or "").strip(), note)
        return [by_id[note_id] for note_id in wanted if note_id in by_id]

    def alt_chunk(self, element: _Xml) -> str:
        """The text of a w:altChunk (``word_package.alt_chunk_text``)."""
        part = self._document.part.related_parts.get(element.get(_R_ID) or "")
        return alt_chunk_text(part, self._deadline) if part is not None else ""

    def headers_or_footers(self, kind: str) -> list[_Xml]:
        """The w:hdr or w:ftr parts the sections show, each once: per section (w:sectPr),
        its w:headerReference/w:footerReference of each type, a type it lacks inherited from
        the section before; the first-page one only with w:titlePg, the even-page one only
        with w:evenAndOddHeaders in the settings."""
        reference = _w(f"{kind}Reference")
        even_and_odd = self._document.settings.odd_and_even_pages_header_footer
        reltype = RT.HEADER if kind == "header" else RT.FOOTER
        related = {
            rel_id: rel.target_part
            for rel_id, rel in self._document.part.rels.items()
            if rel.reltype == reltype and not rel.is_external
        }
        current: dict[str, str] = {}
        shown: dict[str, Part] = {}
        for sect_pr in self._sections():
            for child in sect_pr:
                if child.tag == reference:
                    current[child.get(_w("type")) or "default"] = child.get(_R_ID) or ""
            types = ["first"] if _is_on(sect_pr.find(_w("titlePg"))) else []
            types += ["default", "even"] if even_and_odd else ["default"]
            for type_ in types:
                part = related.get(current.get(type_, ""))
                if part is not None:
                    shown.setdefault(str(part.partname), part)
        return [_root(part) for part in shown.values()]

    def _sections(self) -> list[_Xml]:
        """The w:sectPr of each section: in paragraph properties, and the body's last."""
        body: _Xml = self._document.element.body
        return [
            sect_pr
            for sect_pr in body.iter(_SECT_PR)
            if (parent := sect_pr.getparent()) is not None and parent.tag in (_PPR, body.tag)
        ]

    def style_name(self, properties: _Xml | None) -> str:
        """The name of the paragraph style of a w:pPr (w:pStyle), or of the default one."""
        style = properties.find(_PSTYLE) if properties is not None else None
        style_id = style.get(_VAL) if style is not None else None
        if style_id is None:
            return self._default_style
        return self._styles.get(style_id, self._default_style)

    def list_kind(self, properties: _Xml | None, style: str) -> tuple[bool, int] | None:
        """(is a bullet, nesting level) for a list item (by style or w:pPr/w:numPr), else
        None."""
        by_style = _LIST_STYLE.match(style)
        if by_style:
            return by_style.group(1) == "Bullet", int(by_style.group(2) or 1) - 1
        numbering = properties.find(_NUM_PR) if properties is not None else None
        if numbering is None:
            return None
        num_id_element, level_element = numbering.find(_NUM_ID), numbering.find(_LEVEL)
        try:
            num_id = int(num_id_element.get(_VAL) or 0) if num_id_element is not None else 0
            level = min(int(level_element.get(_VAL) or 0), 8) if level_element is not None else 0
        except ValueError:
            return None
        if num_id == 0:  # numId 0 switches numbering off
            return None
        key = (num_id, level)
        if key not in self._bullet_formats:
            self._bullet_formats[key] = self._lookup_is_bullet(num_id, level)
        return self._bullet_formats[key], level

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


class _Flow:
    """One sequence of blocks (a story, a text box, a table cell) as Markdown-like blocks;
    ``plain`` (in table cells) leaves out heading and list markers and flattens tables."""

    def __init__(self, reader: _Reader, *, plain: bool) -> None:
        self._reader = reader
        self._plain = plain
        self._blocks: list[str] = []
        self._list_lines: list[str] = []  # the list being collected, one item per line
        self._numbers: dict[int, int] = {}  # next number per nesting level of a numbered list

    def text(self) -> str:
        self._end_list()
        return "\n\n".join(self._blocks)

    def add_blocks(self, container: _Xml) -> None:
        """Block-level content: w:p, w:tbl, and what wraps them (block w:sdt, w:customXml,
        mc:AlternateContent: one branch); w:del and w:moveFrom are skipped."""
        for child in container:
            self._reader.tick()
            tag = child.tag
            if tag == _P:
                self._add_paragraph(child)
            elif tag == _TBL:
                self._add_table(child)
            elif tag == _ALTERNATE:
                branch = _branch(child)
                if branch is not None:
                    self.add_blocks(branch)
            elif tag in _REFERENCES:
                self._reader.refer(child)
            elif tag == _ALT_CHUNK:
                if text := self._reader.alt_chunk(child):
                    self._end_list()
                    self._blocks.append(text)
            elif isinstance(tag, str) and tag not in _SKIPPED:
                self.add_blocks(child)

    def _add_paragraph(self, paragraph: _Xml) -> None:
        """A w:p, then the text boxes anchored in it (w:txbxContent), in their order."""
        pieces: list[str] = []
        boxes: list[_Xml] = []
        self._reader.inline(paragraph, pieces, boxes)
        text = "".join(pieces).strip()
        if text:
            self._add_text(paragraph, text)
        for box in boxes:
            if rendered := self._reader.render(box, plain=self._plain):
                self._flush_list()
                self._blocks.append(rendered)

    def _add_text(self, paragraph: _Xml, text: str) -> None:
        if self._plain:
            self._blocks.append(text)
            return
        properties = next(iter(paragraph), None)  # w:pPr comes first when there is one
        if properties is not None and properties.tag != _PPR:
            properties = None
        style = self._reader.style_name(properties)
        heading = _HEADING_STYLE.match(style)
        if heading or style == "Title":
            self._end_list()
            self._blocks.append("#" * (int(heading.group(1)) if heading else 1) + " " + text)
            return
        list_item = self._reader.list_kind(properties, style)
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

    def _add_table(self, table: _Xml) -> None:
        """A w:tbl as a Markdown table, one w:tr per line (a deleted row, w:trPr/w:del, left
        out); each w:tc's content on one line, a cell merged down (w:vMerge) in every row it
        spans. In a cell, a nested table is flattened: cells joined by "; ", rows by " / "."""
        rows: list[list[str]] = []
        merged: dict[int, str] = {}  # the text of a vertically merged cell, by grid column
        for row in _wrapped(table, _TR):
            if row.find(_DELETED_ROW_PATH) is not None:
                continue
            cells, column = [], 0
            for cell in _wrapped(row, _TC):
                merge = cell.find(_V_MERGE_PATH)
                if merge is not None and merge.get(_VAL, "continue") == "continue":
                    cells.append(merged.get(column, ""))  # repeated in each row, as it shows
                else:
                    cells.append(" ".join(self._reader.render(cell, plain=True).split()))
                    merged[column] = cells[-1]
                span = cell.find(_GRID_SPAN_PATH)
                column += _number(span.get(_VAL) if span is not None else None, 1)
            if any(cells):
                rows.append(cells)
        if not rows:
            return
        if self._plain:
            self._blocks.append(" / ".join("; ".join(filter(None, cells)) for cells in rows))
            return
        self._end_list()
        lines = ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in rows]
        lines.insert(1, "|" + " --- |" * len(rows[0]))
        self._blocks.append("\n".join(lines))

    def _flush_list(self) -> None:
        if self._list_lines:
            self._blocks.append("\n".join(self._list_lines))
        self._list_lines = []

    def _end_list(self) -> None:
        self._flush_list()
        self._numbers = {}


def _wrapped(element: _Xml, tag: str) -> Iterator[_Xml]:
    """The children of ``element`` with ``tag``, looking through w:sdt, w:sdtContent and
    w:customXml wrappers (rows of a w:tbl, cells of a w:tr)."""
    for child in element:
        if child.tag == tag:
            yield child
        elif child.tag in _ROW_WRAPPERS:
            yield from _wrapped(child, tag)


def _branch(alternate: _Xml) -> _Xml | None:
    """The one branch of an mc:AlternateContent to read: the first mc:Choice, or else the
    mc:Fallback, that holds text (a text box is in both, as DrawingML and as VML)."""
    branches = [child for child in alternate if child.tag == _CHOICE]
    branches += [child for child in alternate if child.tag == _FALLBACK]
    for branch in branches:
        if next(branch.iter(_T, _MATH_T), None) is not None:
            return branch
    return None


def _root(part: Part) -> _Xml:
    """The XML of a part; python-docx parses only some kinds (not w:footnotes, w:endnotes)."""
    return cast("_Xml", part.element if isinstance(part, XmlPart) else parse_xml(part.blob))


def _number(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _is_on(element: _Xml | None) -> bool:
    """An ST_OnOff property element: present and not switched off by w:val."""
    return element is not None and (element.get(_VAL) or "true").lower() not in _OFF
