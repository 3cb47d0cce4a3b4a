"""Real DOCX files built at test time with a unique word in every place a reader sees text
(and a few where no reader does). python-docx makes what it can (headings, lists, tables,
headers and footers, comments, sections); raw WordprocessingML does the rest: elements
inserted into the body, footnotes and endnotes added as parts through python-docx's package
API, and parts replaced by rewriting the zip."""

from __future__ import annotations

import copy
import io
import zipfile

import docx
from docx.document import Document
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.part import Part
from docx.oxml.ns import qn
from docx.oxml.parser import parse_xml

# Where each visible word is, in the order a reader meets it.
HEADER_WORDS = {"first-page header": "quokkafirstheader", "header": "quokkaheader"}
BODY_WORDS = {
    "heading": "quokkaheading",
    "body paragraph": "quokkabody",
    "list item": "quokkalist",
    "tracked insertion": "quokkainserted",
    "move destination": "quokkamovedto",
    "hyperlink": "quokkahyperlink",
    "smart tag": "quokkasmarttag",
    "inline custom XML": "quokkacustomxml",
    "inline content control": "quokkainlinesdt",
    "simple field": "quokkafield",
    "complex field result": "quokkafieldresult",
    "line break before": "quokkabreakone",
    "line break after": "quokkabreaktwo",
    "after a tab": "quokkatabbed",
    "block content control": "quokkablocksdt",
    "text box anchor": "quokkaanchor",
    "text box (AlternateContent)": "quokkatextbox",
    "VML text box anchor": "quokkavmlanchor",
    "VML text box": "quokkavml",
    "after the text boxes": "quokkaafter",
    "note anchor": "quokkanoteanchor",
    "table cell": "quokkacell",
    "nested table cell": "quokkanested",
    "content control in a cell": "quokkacellsdt",
    "insertion in a cell": "quokkacellins",
    "row in a content control": "quokkarowsdt",
    "comment anchor": "quokkacommented",
    "second section": "quokkasectiontwo",
}
NOTE_WORDS = {"footnote": "quokkafootnote", "endnote": "quokkaendnote", "comment": "quokkacomment"}
FOOTER_WORDS = {"footer": "quokkafooter"}
VISIBLE_WORDS = {**HEADER_WORDS, **BODY_WORDS, **NOTE_WORDS, **FOOTER_WORDS}
HIDDEN_WORDS = {
    "tracked deletion": "quokkadeleted",
    "move source": "quokkamovedfrom",
    "field instruction": "quokkainstruction",
}

_NAMESPACES = {
    "w": "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
    "wp": "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing",
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "wps": "http://schemas.microsoft.com/office/word/2010/wordprocessingShape",
    "v": "urn:schemas-microsoft-com:vml",
}
_DECLARATIONS = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in _NAMESPACES.items())
_REVISION = 'w:author="Reviewer" w:date="2026-01-01T00:00:00Z"'


def _run(text: str) -> str:
    return f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>'


def _paragraph(inner: str) -> str:
    return f"<w:p {_DECLARATIONS}>{inner}</w:p>"


def _text_box_content(text: str) -> str:
    return f"<w:txbxContent><w:p>{_run(text)}</w:p></w:txbxContent>"


def _vml_text_box(text: str) -> str:
    """A legacy VML text box (w:pict/v:shape/v:textbox)."""
    return (
        '<w:pict><v:shape id="box" type="#_x0000_t202" style="width:120pt;height:40pt">'
        f"<v:textbox>{_text_box_content(text)}</v:textbox></v:shape></w:pict>"
    )


def _drawingml_text_box(text: str) -> str:
    """The same text box twice, as Word writes it: DrawingML (wps:txbx) in mc:Choice, VML in
    mc:Fallback."""
    drawing = (
        '<w:drawing><wp:anchor distT="0" distB="0" distL="0" distR="0" simplePos="0" '
        'relativeHeight="1" behindDoc="0" locked="0" layoutInCell="1" allowOverlap="1">'
        '<wp:simplePos x="0" y="0"/><wp:positionH relativeFrom="column"><wp:posOffset>0'
        '</wp:posOffset></wp:positionH><wp:positionV relativeFrom="paragraph"><wp:posOffset>0'
        '</wp:posOffset></wp:positionV><wp:extent cx="1524000" cy="508000"/><wp:wrapSquare '
        'wrapText="bothSides"/><wp:docPr id="1" name="Text Box 1"/><a:graphic><a:graphicData '
        'uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"><wps:wsp>'
        '<wps:cNvSpPr txBox="1"/><wps:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="1524000" '
        'cy="508000"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></wps:spPr>'
        f"<wps:txbx>{_text_box_content(text)}</wps:txbx><wps:bodyPr/></wps:wsp>"
        "</a:graphicData></a:graphic></wp:anchor></w:drawing>"
    )
    return (
        f'<w:r><mc:AlternateContent><mc:Choice Requires="wps">{drawing}</mc:Choice>'
        f"<mc:Fallback>{_vml_text_box(text)}</mc:Fallback></mc:AlternateContent></w:r>"
    )


def _notes_part(kind: str, text: str) -> bytes:
    """w:footnotes or w:endnotes: the separator and continuation separator Word always
    writes, and note 1."""
    return (
        f'<w:{kind}s xmlns:w="{_NAMESPACES["w"]}">'
        f'<w:{kind} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{kind}>'
        f'<w:{kind} w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/>'
        f"</w:r></w:p></w:{kind}>"
        f'<w:{kind} w:id="1"><w:p><w:r><w:{kind}Ref/></w:r>{_run(f" The {text} explains.")}'
        f"</w:p></w:{kind}></w:{kind}s>"
    ).encode()


def _append(document: Document, xml: str) -> None:
    """A raw block element at the end of the body (before its w:sectPr)."""
    body = document.element.body
    body.sectPr.addprevious(parse_xml(xml))


def _add_inline_paragraphs(document: Document) -> None:
    words = {**BODY_WORDS, **HIDDEN_WORDS}
    link = document.part.relate_to("https://example.com/", RT.HYPERLINK, is_external=True)
    _append(
        document,
        _paragraph(
            _run("Changed: ")
            + f'<w:ins w:id="11" {_REVISION}>{_run(words["tracked insertion"])}</w:ins>'
            + f'<w:del w:id="12" {_REVISION}><w:r><w:delText>{words["tracked deletion"]}'
            + "</w:delText></w:r></w:del>"
            + _run(" kept.")
        ),
    )
    _append(
        document,
        _paragraph(
            f'<w:moveFromRangeStart w:id="13" w:name="move1" {_REVISION}/>'
            + f'<w:moveFrom w:id="14" {_REVISION}>{_run(words["move source"])}</w:moveFrom>'
            + '<w:moveFromRangeEnd w:id="13"/>'
            + _run(" Moved: ")
            + f'<w:moveToRangeStart w:id="15" w:name="move1" {_REVISION}/>'
            + f'<w:moveTo w:id="16" {_REVISION}>{_run(words["move destination"])}</w:moveTo>'
            + '<w:moveToRangeEnd w:id="15"/>'
        ),
    )
    _append(
        document,
        _paragraph(
            _run("Links: ")
            + f'<w:hyperlink r:id="{link}">{_run(words["hyperlink"])}</w:hyperlink>'
            + _run(" and ")
            + '<w:smartTag w:uri="urn:schemas-microsoft-com:office:smarttags" w:element="place">'
            + f"{_run(words['smart tag'])}</w:smartTag>"
            + _run(" and ")
            + '<w:customXml w:uri="urn:example" w:element="term">'
            + f"{_run(words['inline custom XML'])}</w:customXml>"
            + _run(" and ")
            + '<w:sdt><w:sdtPr><w:alias w:val="Client"/><w:text/></w:sdtPr>'
            + f"<w:sdtContent>{_run(words['inline content control'])}</w:sdtContent></w:sdt>"
        ),
    )
    _append(
        document,
        _paragraph(
            _run("Fields: ")
            + f'<w:fldSimple w:instr=" TITLE ">{_run(words["simple field"])}</w:fldSimple>'
            + _run(" and ")
            + '<w:r><w:fldChar w:fldCharType="begin"/></w:r>'
            + f'<w:r><w:instrText xml:space="preserve"> SUBJECT {words["field instruction"]} '
            + "</w:instrText></w:r>"
            + '<w:r><w:fldChar w:fldCharType="separate"/></w:r>'
            + _run(words["complex field result"])
            + '<w:r><w:fldChar w:fldCharType="end"/></w:r>'
        ),
    )
    _append(
        document,
        _paragraph(
            f"<w:r><w:t>{words['line break before']}</w:t><w:br/><w:t>"
            f"{words['line break after']}</w:t><w:tab/><w:t>{words['after a tab']}</w:t>"
            "<w:noBreakHyphen/><w:t>joined</w:t></w:r>"
        ),
    )
    _append(
        document,
        f'<w:sdt {_DECLARATIONS}><w:sdtPr><w:alias w:val="Terms"/></w:sdtPr><w:sdtContent>'
        f"<w:p>{_run(words['block content control'])}</w:p></w:sdtContent></w:sdt>",
    )
    _append(
        document,
        _paragraph(
            _run(f"{words['text box anchor']} ")
            + _drawingml_text_box(words["text box (AlternateContent)"])
        ),
    )
    _append(
        document,
        _paragraph(
            _run(f"{words['VML text box anchor']} ")
            + f"<w:r>{_vml_text_box(words['VML text box'])}</w:r>"
        ),
    )
    _append(document, _paragraph(_run(words["after the text boxes"])))
    _append(
        document,
        _paragraph(
            _run(f"{words['note anchor']} has notes.")
            + '<w:r><w:footnoteReference w:id="1"/></w:r>'
            + '<w:r><w:endnoteReference w:id="1"/></w:r>'
        ),
    )


def _add_table(document: Document) -> None:
    """Cells with plain text, a nested table, a content control and an insertion; one row
    inside a row-level content control."""
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = BODY_WORDS["table cell"]
    nested = table.cell(0, 1).add_table(rows=1, cols=2)
    nested.cell(0, 0).text = "inner"
    nested.cell(0, 1).text = BODY_WORDS["nested table cell"]
    for column, inner in enumerate(
        [
            '<w:sdt><w:sdtPr><w:alias w:val="Cell"/></w:sdtPr><w:sdtContent>'
            f"{_run(BODY_WORDS['content control in a cell'])}</w:sdtContent></w:sdt>",
            f'<w:ins w:id="21" {_REVISION}>{_run(BODY_WORDS["insertion in a cell"])}</w:ins>',
        ]
    ):
        cell = table.cell(1, column)._tc
        cell.remove(cell.p_lst[0])
        cell.append(parse_xml(_paragraph(inner)))
    table._tbl.append(
        parse_xml(
            f"<w:sdt {_DECLARATIONS}><w:sdtPr/><w:sdtContent><w:tr><w:tc><w:p>"
            f"{_run(BODY_WORDS['row in a content control'])}</w:p></w:tc><w:tc><w:p/></w:tc>"
            "</w:tr></w:sdtContent></w:sdt>"
        )
    )


def _add_notes(document: Document) -> None:
    package = document.part.package
    for kind, content_type, reltype in [
        ("footnote", CT.WML_FOOTNOTES, RT.FOOTNOTES),
        ("endnote", CT.WML_ENDNOTES, RT.ENDNOTES),
    ]:
        part = Part(
            PackURI(f"/word/{kind}s.xml"),
            content_type,
            _notes_part(kind, NOTE_WORDS[kind]),
            package,
        )
        document.part.relate_to(part, reltype)


def make_docx_with_every_part() -> bytes:
    """Two sections: the first shows a first-page header, a header and a footer; the second
    refers again to the same header and inherits the rest (each must be read once)."""
    document = docx.Document()
    section = document.sections[0]
    section.different_first_page_header_footer = True
    section.header.paragraphs[0].text = HEADER_WORDS["header"]
    section.first_page_header.paragraphs[0].text = HEADER_WORDS["first-page header"]
    section.footer.paragraphs[0].text = FOOTER_WORDS["footer"]

    document.add_heading(BODY_WORDS["heading"], level=1)
    document.add_paragraph(f"Plain text with {BODY_WORDS['body paragraph']} in it.")
    document.add_paragraph(BODY_WORDS["list item"], style="List Bullet")
    _add_inline_paragraphs(document)
    _add_table(document)
    reviewed = document.add_paragraph(f"Reviewed: {BODY_WORDS['comment anchor']}.")
    document.add_comment(reviewed.runs, text=NOTE_WORDS["comment"], author="Reviewer")
    _add_notes(document)

    default_header = section._sectPr.find(qn("w:headerReference"))
    second = document.add_section()
    second._sectPr.insert(0, copy.deepcopy(default_header))
    document.add_paragraph(f"The {BODY_WORDS['second section']} starts here.")
    return _save(document)


def make_docx_with_merged_cells() -> bytes:
    """A 3x3 table: the first column's top two cells merged (w:vMerge), the last row's last
    two (w:gridSpan)."""
    document = docx.Document()
    table = document.add_table(rows=3, cols=3)
    for row_index, row in enumerate(table.rows):
        for column, cell in enumerate(row.cells):
            cell.text = f"c{row_index}{column}"
    table.cell(0, 0).merge(table.cell(1, 0)).text = "down"
    table.cell(2, 1).merge(table.cell(2, 2)).text = "across"
    return _save(document)


def make_docx_with_header_variants() -> bytes:
    """A first-page header the section does not show (no w:titlePg) and an even-page header
    the settings switch on (w:evenAndOddHeaders)."""
    document = docx.Document()
    section = document.sections[0]
    section.different_first_page_header_footer = True
    section.first_page_header.paragraphs[0].text = "quokkaunshown"
    section.different_first_page_header_footer = False
    document.settings.odd_and_even_pages_header_footer = True
    section.header.paragraphs[0].text = "quokkaodd"
    section.even_page_header.paragraphs[0].text = "quokkaeven"
    document.add_paragraph("Body text.")
    return _save(document)


def make_docx_with_only_deleted_text() -> bytes:
    document = docx.Document()
    _append(
        document,
        _paragraph(
            f'<w:del w:id="1" {_REVISION}><w:r><w:delText>gone</w:delText></w:r></w:del>'
            f'<w:moveFrom w:id="2" {_REVISION}>{_run("moved away")}</w:moveFrom>'
        ),
    )
    return _save(document)


def replace_entry(data: bytes, name: str, content: bytes) -> bytes:
    """The archive ``data`` with entry ``name`` holding ``content`` instead."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info, content if info.filename == name else source.read(info))
    return buffer.getvalue()


def _save(document: Document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
