"""The readers of PPTX, XLSX, CSV and HTML and the encoding rule, file by file, in this process
(``parse_file`` is what a sandbox worker runs): the exact text each makes, the sniffing rules,
and the limits (characters, the deadline, the archive checks) each keeps."""

from __future__ import annotations

import codecs
import io
import zipfile
from pathlib import Path

import pytest

from omnichat.documents.extraction.archive import ArchiveLimits
from omnichat.documents.extraction.errors import (
    DocumentTooComplex,
    DocumentTooLarge,
    UnreadableDocument,
    UnsafeArchive,
    UnsupportedDocumentType,
)
from omnichat.documents.extraction.ooxml import transitional_uri, transitional_xml
from omnichat.documents.extraction.parse import ParseLimits, parse_file
from omnichat.documents.extraction.tables import markdown_table
from omnichat.documents.extraction.text import TEXT_SAMPLE_BYTES, decode_text
from omnichat.rag.types import DocumentKind, ExtractedDocument
from omnichat.settings import Settings
from tests import office_factory as make
from tests.docx_factory import make_docx_with_every_part, replace_entry
from tests.test_formats import CSV_ROWS, DECK, WORKBOOK, page_html

ARCHIVE = ArchiveLimits(
    max_uncompressed_bytes=50 * 2**20, max_entries=500, max_compression_ratio=100
)
LIMITS = ParseLimits(max_pdf_pages=10, max_chars=1_000_000, archive=ARCHIVE)
XLSX_SHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"


def parse(
    tmp_path: Path, data: bytes, filename: str, limits: ParseLimits = LIMITS
) -> ExtractedDocument:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return parse_file(str(path), filename, limits)


def text_of(tmp_path: Path, data: bytes, filename: str) -> str:
    document = parse(tmp_path, data, filename)
    assert len(document.pages) == 1
    return document.pages[0].text


# -- what each reader makes ----------------------------------------------------------------------


def test_pptx_pages_are_slides_title_shapes_tables_then_notes(tmp_path: Path) -> None:
    document = parse(tmp_path, make.make_pptx(DECK), "deck.pptx")

    assert document.kind is DocumentKind.PPTX
    assert [(page.number, page.text) for page in document.pages] == [
        (
            1,
            "# Quarterly xylophone review\n\nRevenue from marzipan grew\nCosts of quinoa fell\n\n"
            "Boxed narwhal remark\n\nGrouped axolotl\n\nGrouped pangolin\n\n"
            "Notes: Remember the capybara anecdote",
        ),
        (2, ""),
        (
            3,
            "| Region | Mascot |\n| --- | --- |\n| Northland | wombat |\n| Southland | okapi |\n\n"
            "Notes: Table notes about tapirs",
        ),
        (4, "# Closing flamingo thoughts"),
    ]


def test_xlsx_sections_per_sheet_values_not_formulas(tmp_path: Path) -> None:
    sheets = {**WORKBOOK, "Empty": [[None, None]]}
    text = text_of(tmp_path, make.make_xlsx(sheets, formula="=SUM(D3:D4)"), "book.xlsx")

    assert text == (
        "## Inventory\n\n| Gadget | Depot | Tally |\n| --- | --- | --- |\n"
        "| sprocket | Rotterdam | 42 |\n| gizmo | Valparaíso | 7.5 |\n\n"
        "## Staff Roster\n\n| Name | Started |\n| --- | --- |\n"
        "| Henrietta | 2026-03-14 |\n| Bartholomew |  |"
    )


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (make.make_csv(CSV_ROWS), "essen.csv"),
        (make.make_csv(CSV_ROWS, encoding="utf-8", delimiter=","), "essen.CSV"),
        (make.make_csv(CSV_ROWS, encoding="utf-8-sig", delimiter="\t"), "essen.tsv"),
        (make.make_csv(CSV_ROWS, delimiter="|"), "essen.csv"),
    ],
    ids=["cp1252-semicolon", "utf8-comma", "bom-tab", "pipe"],
)
def test_csv_any_delimiter_and_encoding_is_one_table(
    tmp_path: Path, data: bytes, name: str
) -> None:
    document = parse(tmp_path, data, name)

    assert document.kind is DocumentKind.CSV
    assert document.pages[0].text.startswith(
        "| Stadt | Leibgericht | Preis |\n| --- | --- | --- |\n| München | Käsespätzle | 12,50 "
    )


def test_csv_quoted_fields_may_hold_delimiters_newlines_and_pipes(tmp_path: Path) -> None:
    data = b'name,note,\n"Smith, J.","two\nlines | here",\n\n,,\nDoe,plain,\n'

    assert text_of(tmp_path, data, "people.csv") == (
        "| name | note |\n| --- | --- |\n| Smith, J. | two lines \\| here |\n| Doe | plain |"
    )


def test_xlsx_of_thirty_thousand_rows_is_read_whole_within_the_default_limits(
    tmp_path: Path,
) -> None:
    """30,000 rows x 8 columns (refused at the 10 s deadline when openpyxl read it) is one
    table, first row to last, under the server's default parse limits."""
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Ledger")
    sheet.append([f"column {c}" for c in range(8)])
    for r in range(30_000):
        sheet.append([r, f"item{r}", r * 0.5, "text", f"city{r % 97}", r % 7, "x", f"note{r}"])
    path = tmp_path / "ledger.xlsx"
    workbook.save(path)
    limits = ParseLimits.from_settings(Settings())

    text = parse(tmp_path, path.read_bytes(), "ledger.xlsx", limits).pages[0].text
    assert text.startswith("## Ledger\n\n| column 0 | column 1 |")
    assert "| 0 | item0 | 0 | text |" in text
    assert "| 29999 | item29999 | 14999.5 | text |" in text


def test_csv_a_field_longer_than_the_csv_modules_default_limit_is_read(tmp_path: Path) -> None:
    """A 300 KB note in one cell (the csv module stops at 128 KiB by default) is a cell, not a
    malformed file."""
    note = "lorem " * 50_000 + "quetzalcoatlus"
    data = f'id,note\n1,"{note}"\n2,short\n'.encode()

    text = text_of(tmp_path, data, "notes.csv")
    assert text.startswith("| id | note |")
    assert "quetzalcoatlus" in text
    assert text.endswith("| 2 | short |")


@pytest.mark.parametrize(
    "data",
    [
        b"just one column\nof words\nper line\n",
        b"Dear Sir, thank you.\nI will come on Monday\nRegards\n",
    ],
    ids=["one-column", "prose"],
)
def test_text_named_csv_that_is_no_table_stays_text(tmp_path: Path, data: bytes) -> None:
    assert parse(tmp_path, data, "notes.csv").kind is DocumentKind.TEXT


def test_long_tables_repeat_their_header_in_every_block() -> None:
    rows = [["Key", "Value"], *[[f"k{n}", "v" * 50] for n in range(40)]]
    blocks = markdown_table(rows, block_chars=300).split("\n\n")

    assert len(blocks) > 5
    assert all(block.startswith("| Key | Value |\n| --- | --- |\n| k") for block in blocks)
    assert sum(block.count("| k") for block in blocks) == 40


def test_html_keeps_main_text_title_headings_lists_pre_and_tables(tmp_path: Path) -> None:
    page = (
        "<!-- saved from url=(0014)about:internet -->\n<!DOCTYPE html><html><head>"
        "<title>Field  guide</title><style>p{color:red}</style></head><body>"
        "<header>Site banner</header><div role='navigation'>Menu</div>"
        "<article><header><h1>Field guide</h1></header><p>First   line<br>second line</p>"
        "<ul><li>one</li><li><p>two</p></li></ul><pre>def f():\n    return 1</pre>"
        "<table><tr><th>Bird</th><th></th></tr><tr><td>wren</td><td></td></tr></table>after"
        "<h3><span>Small</span> print</h3><div hidden>secret</div>"
        "<span aria-hidden='true'>icon</span><p style='display: none'>gone</p>"
        "<aside>aside</aside><form><input value='x'><button>Go</button></form>"
        "<footer>Article footer</footer></article><footer>Site footer</footer></body></html>"
    )

    assert text_of(tmp_path, page.encode(), "x.bin") == (
        "# Field guide\n\nFirst line\nsecond line\n\n- one\n\n- two\n\n"
        "def f():\n    return 1\n\n| Bird |\n| --- |\n| wren |\n\nafter\n\n### Small print\n\n"
        "Article footer"
    )


def test_html_main_element_is_the_text_when_there_is_one(tmp_path: Path) -> None:
    page = b"<html><head><title>T</title></head><body><p>outside</p><main>inside</main></body>"

    assert text_of(tmp_path, page, "p.html") == "# T\n\ninside"


@pytest.mark.parametrize("depth", [300, 2000])
def test_html_nested_deeper_than_libxml2s_default_limit_keeps_every_word(
    tmp_path: Path, depth: int
) -> None:
    page = f"<!DOCTYPE html><body>{'<div>' * depth}deepest{'</div>' * depth}<p>after</p>"
    assert text_of(tmp_path, page.encode(), "p.html") == "deepest\n\nafter"


def test_html_nested_past_what_its_reader_reads_is_refused_not_cut(tmp_path: Path) -> None:
    page = f"<!DOCTYPE html><body>{'<div>' * 3000}deepest{'</div>' * 3000}<p>after</p>"
    with pytest.raises(DocumentTooComplex, match="more than 2048 levels deep"):
        parse(tmp_path, page.encode(), "p.html")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="x"><body>x</body></html>', "html"),
        (b"\n  <HTML><BODY>x</BODY></HTML>", "html"),
        (b"<head><title>x</title></head>", "html"),
        ("<!DOCTYPE html><p>ü</p>".encode("utf-16"), "html"),
        (b'<p align="center"><img src="logo.png"></p>\n\n# Project\n', "md"),
        (b"<div>a fragment</div>", "md"),
        (b"<htmlish>", "md"),
    ],
    ids=["xhtml", "upper-case", "head-only", "utf-16", "readme", "fragment", "not-a-tag"],
)
def test_html_is_decided_by_a_document_start(tmp_path: Path, data: bytes, kind: str) -> None:
    assert parse(tmp_path, data, "README.md").kind == kind


@pytest.mark.parametrize("declared", ["windows-1252", "iso-8859-1", "latin1"])
def test_html_meta_charset_decodes_the_page(tmp_path: Path, declared: str) -> None:
    data = make.make_html(
        title="T",
        heading="H",
        paragraphs=[make.GERMAN],
        script="s",
        style="c",
        nav="n",
        footer="f",
        charset="cp1252",
    ).replace(b"charset='cp1252'", f"charset='{declared}'".encode())

    assert make.GERMAN in text_of(tmp_path, data, "p.html")


def test_html_meta_charset_comes_before_guessing(tmp_path: Path) -> None:
    # Short Turkish text in windows-1254 is guessed as another single-byte code page.
    turkish = "Pijamalı hasta yağız şoföre çabucak güvendi."
    data = make.make_html(
        title="T",
        heading="H",
        paragraphs=[turkish],
        script="s",
        style="c",
        nav="n",
        footer="f",
        charset="windows-1254",
    )

    assert turkish in text_of(tmp_path, data, "p.html")


# -- the encoding rule ---------------------------------------------------------------------------

ENCODED = [
    ("utf-8", "Plain ASCII and ünïcödé — 東京"),
    ("utf-8-sig", "BOM: Grüße"),
    ("utf-16-le", "\ufeffLE: Grüße 東京"),
    ("utf-16-be", "\ufeffBE: Grüße 東京"),
    ("utf-32", "UTF-32: Grüße"),
    ("cp1252", make.GERMAN),
    ("latin-1", make.FRENCH),
    ("cp1252", "Café crème, déjà vu, garçon."),
    ("cp1252", "Grüße"),
    ("shift_jis", make.JAPANESE),
    ("cp1251", "Привет, как дела? Сегодня хорошая погода в Москве."),
    ("gb18030", "我们今天去公园散步，天气很好。"),
]


@pytest.mark.parametrize(("encoding", "text"), ENCODED, ids=[e for e, _ in ENCODED])
def test_decode_text_reads_each_encoding(encoding: str, text: str) -> None:
    decoded = decode_text(text.encode(encoding))

    assert decoded is not None
    assert decoded[0].lstrip("\ufeff") == text.lstrip("\ufeff")


@pytest.mark.parametrize(
    "data",
    [
        b"nul\x00inside",
        b"\x01\x02\x03\x04abc" * 10,
        "no BOM".encode("utf-16-le"),
        bytes(range(256)),
    ],
    ids=["nul", "controls", "utf16-without-bom", "all-bytes"],
)
def test_decode_text_refuses_binary(data: bytes) -> None:
    assert decode_text(data) is None


def test_sample_cut_inside_a_character_agrees_with_the_whole_file(tmp_path: Path) -> None:
    line = "桜餅委員会の議題について話しましょう。".encode("shift_jis")
    data = b"x" + line * (TEXT_SAMPLE_BYTES // len(line) + 10)  # the sample ends mid-character
    assert codecs.decode(data[:TEXT_SAMPLE_BYTES], "shift_jis", "replace").endswith("\ufffd")

    document = parse(tmp_path, data, "long.txt")

    assert document.pages[0].text == data.decode("shift_jis")


def test_legacy_bytes_after_an_ascii_sample_are_still_decoded(tmp_path: Path) -> None:
    data = b"ascii only\n" * (TEXT_SAMPLE_BYTES // 10) + make.GERMAN.encode("cp1252")

    assert parse(tmp_path, data, "late.txt").pages[0].text.endswith(make.GERMAN)


# -- the archive: which Office file, and its checks ----------------------------------------------


def test_office_kind_follows_the_main_parts_content_type(tmp_path: Path) -> None:
    xlsx = make.make_xlsx(WORKBOOK)
    by_default = make.with_content_types(
        make.with_content_types(
            xlsx, (f'<Override PartName="/xl/workbook.xml" ContentType="{XLSX_SHEET}"/>', "")
        ),
        ('ContentType="application/xml"', f'ContentType="{XLSX_SHEET}"'),
    )
    macro = make.with_content_types(
        xlsx, (XLSX_SHEET, "application/vnd.ms-excel.sheet.macroEnabled.main+xml")
    )

    assert parse(tmp_path, by_default, "a.docx").kind is DocumentKind.XLSX
    assert parse(tmp_path, macro, "a.docx").kind is DocumentKind.XLSX


@pytest.mark.parametrize(
    ("data", "name"),
    [(make.make_pptx(DECK), "deck.pptx"), (make.make_xlsx(WORKBOOK), "book.xlsx")],
    ids=["pptx", "xlsx"],
)
def test_a_strict_file_reads_exactly_as_its_transitional_twin(
    tmp_path: Path, data: bytes, name: str
) -> None:
    """PowerPoint's and Excel's "Strict Open XML" (ISO/IEC 29500 Strict): the same markup in
    other namespaces, the parts found by other relationship types, a table's graphic frame by
    another URI; every slide, shape, table, note, sheet and cell as in the usual file."""
    strict, transitional = parse(tmp_path, make.to_strict(data), name), parse(tmp_path, data, name)

    assert strict.kind is transitional.kind
    assert strict.pages == transitional.pages


@pytest.mark.parametrize(
    ("data", "name", "strict_parts"),
    [
        (make_docx_with_every_part(), "every.docx", ("word/header1.xml", "word/footnotes.xml")),
        (make.make_pptx(DECK), "deck.pptx", ("ppt/slides/slide1.xml",)),
    ],
    ids=["docx-header-footnotes", "pptx-slide"],
)
def test_strict_parts_in_a_transitional_package_read_like_the_rest(
    tmp_path: Path, data: bytes, name: str, strict_parts: tuple[str, ...]
) -> None:
    """A Transitional package holding some Strict parts (no Office application writes one, a
    generator might): those parts read like the others (before, a DOCX header's words were
    silently left out and a PPTX with one Strict slide was refused as corrupt)."""
    strict = zipfile.ZipFile(io.BytesIO(make.to_strict(data)))
    mixed = data
    for part in strict_parts:
        mixed = replace_entry(mixed, part, strict.read(part))
    assert mixed != data

    assert parse(tmp_path, mixed, name).pages == parse(tmp_path, data, name).pages


STRICT_W = b"http://purl.oclc.org/ooxml/wordprocessingml/main"
STRICT_A = b"http://purl.oclc.org/ooxml/drawingml/main"
STRICT_RT = b"http://purl.oclc.org/ooxml/officeDocument/relationships"
W = b"http://schemas.openxmlformats.org/wordprocessingml/2006/main"
RT = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def test_strict_uris_map_to_their_transitional_twins() -> None:
    """Every pair the test files are converted with (Open-XML-SDK's and LibreOffice's tables),
    read backwards; anything else stays as it is."""
    for transitional, strict in make.TRANSITIONAL_TO_STRICT:
        assert transitional_uri(strict) == transitional, strict
    for uri in [
        "http://purl.oclc.org/ooxml/descriptions/full",
        "http://purl.oclc.org/ooxml/",
        "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
        "urn:schemas-microsoft-com:vml",
    ]:
        assert transitional_uri(uri) == uri


def test_only_namespace_declarations_and_relationship_uris_are_mapped() -> None:
    """Declarations (either quote), a relationship's Type, a:graphicData's uri; never text,
    a comment, CDATA, another attribute's value (where '>' may stand), or a Target."""
    part = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b"<!-- <w:x xmlns:w='" + STRICT_W + b"'> -->"
        b"<w:document xmlns:w='" + STRICT_W + b"' xmlns:r = \"" + STRICT_RT + b'" '
        b'w:conformance="strict" w:note="a > b xmlns:a=\'' + STRICT_A + b"'\">"
        b'<w:t>xmlns:w="' + STRICT_W + b'" and Type="' + STRICT_RT + b'/header"</w:t>'
        b"<![CDATA[<a xmlns:a='" + STRICT_A + b"'>]]>"
        b'<a:graphicData xmlns:a="' + STRICT_A + b'" uri="http://purl.oclc.org/ooxml/drawingml/'
        b'table"/><Relationship Type="'
        + STRICT_RT
        + b'/extendedProperties" Target="'
        + STRICT_W
        + b'" TargetMode="External"/></w:document>'
    )
    expected = (
        part.replace(b"<w:document xmlns:w='" + STRICT_W, b"<w:document xmlns:w='" + W)
        .replace(b'xmlns:r = "' + STRICT_RT, b'xmlns:r = "' + RT)
        .replace(
            b'<a:graphicData xmlns:a="' + STRICT_A + b'" uri="http://purl.oclc.org/ooxml/'
            b'drawingml/table"',
            b'<a:graphicData xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
            b'uri="http://schemas.openxmlformats.org/drawingml/2006/table"',
        )
        .replace(STRICT_RT + b"/extendedProperties", RT + b"/extended-properties")
    )
    assert expected.count(STRICT_W) == 3  # the comment, the text and the Target
    assert expected.count(STRICT_A) == 2  # the other attribute's value and the CDATA

    assert transitional_xml(part) == expected
    utf16 = part.replace(b"UTF-8", b"UTF-16").decode().encode("utf-16")
    mapped = transitional_xml(utf16)
    assert mapped.startswith(codecs.BOM_UTF16)
    assert mapped.decode("utf-16") == expected.replace(b"UTF-8", b"UTF-16").decode()


@pytest.mark.parametrize(
    ("data", "error", "phrase"),
    [
        (make.make_not_office_zip(), UnsupportedDocumentType, "not a Word document"),
        (make.make_pptx(DECK)[:3000], UnreadableDocument, "corrupt"),
        (
            make.with_extra_entry(make.make_pptx(DECK), "ppt/media/pad.bin", 8 * 2**20),
            DocumentTooLarge,
            "The PPTX file looks like a zip bomb",
        ),
        (make.with_extra_entry(make.make_xlsx(WORKBOOK), "../evil"), UnsafeArchive, "XLSX"),
        (make.make_not_office_zip(strict=True), UnsupportedDocumentType, "not a Word document"),
        (
            make.with_extra_entry(make.to_strict(make.make_pptx(DECK)), "ppt/pad.bin", 8 * 2**20),
            DocumentTooLarge,
            "The PPTX file looks like a zip bomb",
        ),
        (
            make.with_extra_entry(make.to_strict(make.make_xlsx(WORKBOOK)), "../evil"),
            UnsafeArchive,
            "XLSX",
        ),
    ],
    ids=[
        "other-zip",
        "truncated",
        "pptx-bomb",
        "xlsx-unsafe-entry",
        "other-zip-strict-relationship",
        "strict-pptx-bomb",
        "strict-xlsx-unsafe-entry",
    ],
)
def test_archives_are_checked_before_reading(
    tmp_path: Path, data: bytes, error: type[Exception], phrase: str
) -> None:
    with pytest.raises(error, match=phrase):
        parse(tmp_path, data, "upload.pptx")


# -- limits --------------------------------------------------------------------------------------

BIG_ROWS = [["id", "word"], *[[str(n), f"word{n}"] for n in range(3000)]]
BIG_FILES = {
    "csv": (make.make_csv(BIG_ROWS), "big.csv"),
    "xlsx": (make.make_xlsx({"Big": BIG_ROWS}), "big.xlsx"),
    "pptx": (
        make.make_pptx([make.SlideSpec(title=f"Slide {n} " * 40) for n in range(60)]),
        "d.pptx",
    ),
    "html": (page_html(paragraphs=[f"Paragraph {n} " * 20 for n in range(400)]), "p.html"),
}


@pytest.mark.parametrize("kind", list(BIG_FILES))
def test_the_character_limit_stops_every_reader(tmp_path: Path, kind: str) -> None:
    data, name = BIG_FILES[kind]
    small = ParseLimits(max_pdf_pages=10, max_chars=5000, archive=ARCHIVE)

    with pytest.raises(DocumentTooLarge, match="at most 5000 are accepted"):
        parse(tmp_path, data, name, small)


@pytest.mark.parametrize("kind", list(BIG_FILES))
def test_the_deadline_stops_every_reader(tmp_path: Path, kind: str) -> None:
    data, name = BIG_FILES[kind]
    no_time = ParseLimits(max_pdf_pages=10, max_chars=10**7, archive=ARCHIVE, deadline_base_s=0)

    with pytest.raises(DocumentTooComplex):
        parse(tmp_path, data, name, no_time)
