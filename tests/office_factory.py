"""Real PPTX, XLSX, CSV, HTML and legacy-encoded text files, built at test time with the
libraries people's tools use (python-pptx, openpyxl, the stdlib ``csv`` writer)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import openpyxl
import pptx
from pptx.util import Inches, Pt

Rows = Sequence[Sequence[object]]


@dataclass
class SlideSpec:
    """What one slide holds; an empty spec makes a blank slide."""

    title: str | None = None
    bullets: list[str] = field(default_factory=list)  # the body placeholder's paragraphs
    text_box: str | None = None
    grouped: list[str] = field(default_factory=list)  # text boxes inside one group shape
    table: list[list[str]] = field(default_factory=list)  # first row the header
    notes: str | None = None


def make_pptx(slides: Sequence[SlideSpec]) -> bytes:
    presentation = pptx.Presentation()
    title_and_content, blank = presentation.slide_layouts[1], presentation.slide_layouts[6]
    for spec in slides:
        slide = presentation.slides.add_slide(
            title_and_content if spec.title or spec.bullets else blank
        )
        if spec.title or spec.bullets:
            slide.shapes.title.text = spec.title or ""  # type: ignore[union-attr]
            body = slide.placeholders[1].text_frame  # type: ignore[attr-defined]
            for number, bullet in enumerate(spec.bullets):
                paragraph = body.paragraphs[0] if number == 0 else body.add_paragraph()
                paragraph.text = bullet
        if spec.text_box:
            box = slide.shapes.add_textbox(Inches(1), Inches(5), Inches(6), Inches(1))
            box.text_frame.text = spec.text_box
        if spec.grouped:
            group = slide.shapes.add_group_shape()
            for number, text in enumerate(spec.grouped):
                inner = group.shapes.add_textbox(
                    Inches(1 + number), Inches(6), Inches(1), Inches(0.5)
                )
                inner.text_frame.text = text
                inner.text_frame.paragraphs[0].runs[0].font.size = Pt(10)
        if spec.table:
            rows, cols = len(spec.table), len(spec.table[0])
            frame = slide.shapes.add_table(rows, cols, Inches(1), Inches(2), Inches(6), Inches(2))
            for r, values in enumerate(spec.table):
                for c, value in enumerate(values):
                    frame.table.cell(r, c).text = value
        if spec.notes:
            slide.notes_slide.notes_text_frame.text = spec.notes  # type: ignore[union-attr]
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def make_xlsx(sheets: dict[str, Rows], *, formula: str | None = None) -> bytes:
    """One worksheet per entry, rows from A1 (``None`` leaves a cell empty); ``formula`` goes
    below the first sheet's rows (openpyxl saves no cached value for it)."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for r, values in enumerate(rows, start=1):
            for c, value in enumerate(values, start=1):
                if value is not None:
                    sheet.cell(row=r, column=c, value=value)  # type: ignore[arg-type]
    if formula:
        first = workbook.worksheets[0]
        first.cell(row=first.max_row + 1, column=1, value=formula)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def make_csv(rows: Rows, *, encoding: str = "cp1252", delimiter: str = ";") -> bytes:
    """As Excel saves "CSV" in a German locale: cp1252, semicolons, CRLF."""
    text = io.StringIO(newline="")
    csv.writer(text, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return text.getvalue().encode(encoding)


def make_html(
    *,
    title: str,
    heading: str,
    paragraphs: list[str],
    script: str,
    style: str,
    nav: str,
    footer: str,
    table: list[list[str]] | None = None,
    charset: str = "utf-8",
    with_main: bool = True,
) -> bytes:
    """A page with the usual furniture around its text: a script, a style sheet, a nav bar
    and a site footer, and the text inside ``<main>`` (or straight in the body)."""
    rows = "".join(
        "<tr>"
        + "".join(f"<{'th' if r == 0 else 'td'}>{v}</{'th' if r == 0 else 'td'}>" for v in row)
        + "</tr>"
        for r, row in enumerate(table or [])
    )
    content = (
        f"<h1>{heading}</h1>"
        + "".join(f"<p>{p}</p>" for p in paragraphs)
        + (f"<table>{rows}</table>" if rows else "")
    )
    body = f"<main>{content}</main>" if with_main else content
    page = (
        "<!DOCTYPE html>\n<html lang='de'><head>"
        f"<meta charset='{charset}'><title>{title}</title>"
        f"<style>body {{ color: red; }} .{style} {{ margin: 0 }}</style>"
        f"<script>var tracker = '{script}';</script></head>"
        f"<body><nav><a href='/'>{nav}</a></nav>{body}"
        f"<script>console.log('{script}')</script>"
        f"<footer>{footer}</footer></body></html>"
    )
    return page.encode(charset)


def make_not_office_zip(*, strict: bool = False) -> bytes:
    """A ZIP archive with a ``[Content_Types].xml`` and package relationships, like an Office
    file's, whose main part is none of DOCX, PPTX or XLSX (an OpenXPS document); ``strict``:
    related as the main part of a Strict Office file is."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.'
            'openxmlformats-package.relationships+xml"/><Override PartName="/FixedDocSeq.fdseq"'
            ' ContentType="application/vnd.ms-package.xps-fixeddocumentsequence+xml"/></Types>',
        )
        archive.writestr(
            "_rels/.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package'
            '/2006/relationships"><Relationship Id="R1" Type="'
            + (
                "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument"
                if strict
                else "http://schemas.microsoft.com/xps/2005/06/fixedrepresentation"
            )
            + '" Target="/FixedDocSeq.fdseq"/></Relationships>',
        )
        archive.writestr("FixedDocSeq.fdseq", "<FixedDocumentSequence/>")
    return buffer.getvalue()


# Text whose words only decode right in their own encoding.
GERMAN = "Grüße aus München: Bärenstärke, Größenwahn und Käsespätzle kosten 5 € – „so ist es“."
FRENCH = "Le garçon mangea une crème brûlée à Noël, déjà très âgé."
JAPANESE = "会議の議題: 桜餅委員会 について。東京の天気は晴れです。"
TODAY = date(2026, 3, 14)


def with_extra_entry(data: bytes, name: str, size: int = 1, *, compress: bool = True) -> bytes:
    """``data`` (a ZIP) with one more entry of ``size`` zero bytes (deflated: a bomb's entry)."""
    buffer = io.BytesIO(data)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "a", compression=method) as archive:
        archive.writestr(name, bytes(size))
    return buffer.getvalue()


def with_content_types(data: bytes, replace: tuple[str, str]) -> bytes:
    """``data`` (an Office file) with one text replacement in its ``[Content_Types].xml``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "[Content_Types].xml":
                content = content.replace(replace[0].encode(), replace[1].encode())
            archive.writestr(info, content)
    return buffer.getvalue()


# ISO/IEC 29500 Strict: what Word, PowerPoint and Excel write instead of the Transitional URIs
# when a file is saved as "Strict Open XML" (the pairs of dotnet/Open-XML-SDK's strict
# translation tables and LibreOffice's oox namespaces-strict.txt). The package's own namespaces
# (content types, relationships, core properties) and markup compatibility are the same in both.
_OOXML = "http://schemas.openxmlformats.org"
_STRICT = "http://purl.oclc.org/ooxml"
TRANSITIONAL_TO_STRICT = [
    # relationship types whose names differ, before the general officeDocument one below
    (
        f"{_OOXML}/officeDocument/2006/relationships/extended-properties",
        f"{_STRICT}/officeDocument/relationships/extendedProperties",
    ),
    (
        f"{_OOXML}/officeDocument/2006/relationships/custom-properties",
        f"{_STRICT}/officeDocument/relationships/customProperties",
    ),
    (
        f"{_OOXML}/package/2006/relationships/metadata/thumbnail",
        f"{_STRICT}/officeDocument/relationships/metadata/thumbnail",
    ),
    # every other relationship type (.../relationships/officeDocument, /header, /slide, ...)
    # and the r: namespace itself
    (f"{_OOXML}/officeDocument/2006/relationships", f"{_STRICT}/officeDocument/relationships"),
    (
        f"{_OOXML}/officeDocument/2006/extended-properties",
        f"{_STRICT}/officeDocument/extendedProperties",
    ),
    (
        f"{_OOXML}/officeDocument/2006/custom-properties",
        f"{_STRICT}/officeDocument/customProperties",
    ),
    (f"{_OOXML}/officeDocument/2006/docPropsVTypes", f"{_STRICT}/officeDocument/docPropsVTypes"),
    (f"{_OOXML}/officeDocument/2006/math", f"{_STRICT}/officeDocument/math"),
    (f"{_OOXML}/officeDocument/2006/sharedTypes", f"{_STRICT}/officeDocument/sharedTypes"),
    (f"{_OOXML}/officeDocument/2006/bibliography", f"{_STRICT}/officeDocument/bibliography"),
    (f"{_OOXML}/officeDocument/2006/customXml", f"{_STRICT}/officeDocument/customXml"),
    (f"{_OOXML}/wordprocessingml/2006/main", f"{_STRICT}/wordprocessingml/main"),
    (f"{_OOXML}/presentationml/2006/main", f"{_STRICT}/presentationml/main"),
    (f"{_OOXML}/presentationml/2006/ole", f"{_STRICT}/presentationml/ole"),
    (f"{_OOXML}/spreadsheetml/2006/main", f"{_STRICT}/spreadsheetml/main"),
    (f"{_OOXML}/schemaLibrary/2006/main", f"{_STRICT}/schemaLibrary/main"),
    *[
        (f"{_OOXML}/drawingml/2006/{name}", f"{_STRICT}/drawingml/{name}")
        for name in [
            "main",
            "wordprocessingDrawing",
            "spreadsheetDrawing",
            "picture",
            "chart",
            "chartDrawing",
            "diagram",
            "lockedCanvas",
            "table",  # a:graphicData's uri for a table
        ]
    ],
]
# The root element of each kind's main part and the attribute that says it is Strict
# (WordprocessingML qualifies its attributes; PresentationML and SpreadsheetML do not).
_STRICT_ROOTS = {
    "word/document.xml": (b"<w:document ", b'w:conformance="strict" '),
    "ppt/presentation.xml": (b"<p:presentation ", b'conformance="strict" '),
    "xl/workbook.xml": (b"<workbook ", b'conformance="strict" '),
}
# What may stay Transitional-looking in a Strict package: OPC's own namespaces and types, and
# markup compatibility (ISO/IEC 29500-2 and -3 have one form only).
_SHARED_URIS = (
    f"{_OOXML}/package/2006/",
    f"{_OOXML}/markup-compatibility/2006",
)


def to_strict(data: bytes) -> bytes:
    """An Office file (DOCX, PPTX or XLSX) as Word, PowerPoint or Excel save it as "Strict Open
    XML": every XML part's Transitional namespaces, relationship types and graphic-data URIs
    rewritten to their Strict forms, and the main part marked ``conformance="strict"``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.endswith((".xml", ".rels")):
                for transitional, strict in TRANSITIONAL_TO_STRICT:
                    content = content.replace(transitional.encode(), strict.encode())
                if info.filename in _STRICT_ROOTS:
                    root, conformance = _STRICT_ROOTS[info.filename]
                    assert root in content, info.filename
                    content = content.replace(root, root + conformance, 1)
                left = re.sub("|".join(map(re.escape, _SHARED_URIS)).encode(), b"", content)
                assert _OOXML.encode() not in left, (info.filename, content[:400])
            archive.writestr(info, content)
    return buffer.getvalue()
