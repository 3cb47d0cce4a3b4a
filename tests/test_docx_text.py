"""Every word a reader of a DOCX sees is extracted, once, in reading order, and indexed; text
that tracked changes removed, and field instructions, are not."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from omnichat.container import Container
from omnichat.documents.extraction.archive import ArchiveLimits
from omnichat.documents.extraction.docx import extract_docx
from omnichat.documents.extraction.errors import (
    DocumentTooComplex,
    DocumentTooLarge,
    NoExtractableText,
    UnreadableDocument,
)
from omnichat.documents.extraction.parse import ParseLimits, parse_file
from tests import docx_factory as make
from tests.conftest import TestUser
from tests.office_factory import to_strict, with_extra_entry

LIMITS = ArchiveLimits(
    max_uncompressed_bytes=200 * 2**20, max_entries=5000, max_compression_ratio=100
)


def _occurrences(text: str, word: str) -> list[int]:
    return [match.start() for match in re.finditer(rf"\b{word}\b", text)]


def _text_of(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "every.docx"
    path.write_bytes(data)
    document = extract_docx(path, LIMITS)
    assert [page.number for page in document.pages] == [1]
    return document.pages[0].text


def test_every_visible_word_is_read_once_and_no_removed_one(tmp_path: Path) -> None:
    text = _text_of(tmp_path, make.make_docx_with_every_part())

    counts = {place: len(_occurrences(text, word)) for place, word in make.VISIBLE_WORDS.items()}
    assert counts == dict.fromkeys(make.VISIBLE_WORDS, 1)  # a text box is in the file twice
    for place, word in make.HIDDEN_WORDS.items():
        assert word not in text, place


def test_words_come_in_reading_order(tmp_path: Path) -> None:
    """Headers, the body (a text box right after its anchor paragraph), footnotes, endnotes,
    comments, footers: the factory lists its words in that order."""
    text = _text_of(tmp_path, make.make_docx_with_every_part())

    words = list(make.VISIBLE_WORDS.values())
    assert sorted(words, key=lambda word: _occurrences(text, word)[0]) == words
    blocks = text.split("\n\n")
    anchor = blocks.index("quokkaanchor")
    assert blocks[anchor + 1 : anchor + 5] == [
        "quokkatextbox",
        "quokkavmlanchor",
        "quokkavml",
        "quokkaafter",
    ]


def test_markdown_rendering_survives(tmp_path: Path) -> None:
    """Headings and lists keep their markers; a table is one row per line, cells include
    their content controls and insertions, a nested table reads inside its cell."""
    blocks = _text_of(tmp_path, make.make_docx_with_every_part()).split("\n\n")

    assert "# quokkaheading" in blocks
    assert "- quokkalist" in blocks
    assert (
        "| quokkacell | inner; quokkanested |\n"
        "| --- | --- |\n"
        "| quokkacellsdt | quokkacellins |\n"
        "| quokkarowsdt |  |"
    ) in blocks
    assert "quokkabreakone\nquokkabreaktwo\tquokkatabbed-joined" in blocks


def test_merged_cells_read_as_before(tmp_path: Path) -> None:
    assert _text_of(tmp_path, make.make_docx_with_merged_cells()) == (
        "| down | c01 | c02 |\n| --- | --- | --- |\n| down | c11 | c12 |\n| c20 | across |"
    )


def test_only_the_headers_the_sections_show_are_read(tmp_path: Path) -> None:
    text = _text_of(tmp_path, make.make_docx_with_header_variants())

    assert text == "quokkaodd\n\nquokkaeven\n\nBody text."


def test_only_removed_text_is_no_text(tmp_path: Path) -> None:
    with pytest.raises(NoExtractableText):
        _text_of(tmp_path, make.make_docx_with_only_deleted_text())


def test_a_malformed_notes_part_is_corrupt(tmp_path: Path) -> None:
    data = make.replace_entry(
        make.make_docx_with_every_part(), "word/footnotes.xml", b"<w:footnotes not xml"
    )
    with pytest.raises(UnreadableDocument, match="corrupt"):
        _text_of(tmp_path, data)


def test_the_parse_deadline_reaches_the_walk(tmp_path: Path) -> None:
    path = tmp_path / "every.docx"
    path.write_bytes(make.make_docx_with_every_part())
    limits = ParseLimits(max_pdf_pages=10, max_chars=10**6, archive=LIMITS, deadline_base_s=0)

    with pytest.raises(DocumentTooComplex):
        parse_file(str(path), "every.docx", limits)


@pytest.mark.parametrize("conformance", ["transitional", "strict"])
async def test_every_visible_word_is_found_after_upload(
    client: httpx.AsyncClient, alice: TestUser, container: Container, conformance: str
) -> None:
    """As Word saves it by default, and as a "Strict Open XML Document" (ISO/IEC 29500 Strict:
    every part in other namespaces, other relationship types)."""
    data = make.make_docx_with_every_part()
    if conformance == "strict":
        data = to_strict(data)
    r = await client.post(
        "/upload/document",
        files={"file": ("every.docx", data, "application/msword")},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    document = r.json()
    assert document["status"] == "ready"

    for place, word in make.VISIBLE_WORDS.items():
        hits = await container.retriever.retrieve(alice.id, word, mode="keyword")
        assert {hit.document_id for hit in hits} == {document["id"]}, place
        assert any(word in hit.text for hit in hits), place
    for place, word in make.HIDDEN_WORDS.items():
        assert await container.retriever.retrieve(alice.id, word, mode="keyword") == [], place


def _as_word_kind(data: bytes, main_content_type: str) -> bytes:
    """The same package with its main part declared as another kind of Word document."""
    import io
    import zipfile

    source, target = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "[Content_Types].xml":
                word_main = (
                    b"application/vnd.openxmlformats-officedocument.wordprocessingml.document."
                    b"main+xml"
                )
                assert word_main in content
                content = content.replace(word_main, main_content_type.encode())
            out.writestr(item, content)
    return target.getvalue()


@pytest.mark.parametrize(
    ("name", "main_content_type"),
    [
        ("macros.docm", "application/vnd.ms-word.document.macroEnabled.main+xml"),
        (
            "letter.dotx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
        ),
        ("macros.dotm", "application/vnd.ms-word.template.macroEnabledTemplate.main+xml"),
    ],
)
async def test_macro_enabled_documents_and_templates_are_read_like_docx(
    client: httpx.AsyncClient,
    alice: TestUser,
    container: Container,
    name: str,
    main_content_type: str,
) -> None:
    """Word's other kinds (refused with 415 before) are the same WordprocessingML; their macros
    are never run, only their text read."""
    data = _as_word_kind(make.make_docx_with_every_part(), main_content_type)
    r = await client.post(
        "/upload/document",
        files={"file": (name, data, "application/octet-stream")},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    document = r.json()
    assert document["kind"] == "docx"
    for place, word in make.VISIBLE_WORDS.items():
        hits = await container.retriever.retrieve(alice.id, word, mode="keyword")
        assert document["id"] in {hit.document_id for hit in hits}, place


def _with_alt_chunks(chunks: list[tuple[str, str, bytes]]) -> bytes:
    """A DOCX whose body is a paragraph, then each (part name, content type, bytes) imported as
    a w:altChunk, then a closing paragraph."""
    import io

    import docx
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part
    from docx.oxml.parser import parse_xml

    document = docx.Document()
    document.add_paragraph("Opening paragraph.")
    body = document.element.body
    for name, content_type, data in chunks:
        part = Part(PackURI(name), content_type, data, document.part.package)
        rel_id = document.part.relate_to(part, RT.A_F_CHUNK)
        chunk = parse_xml(
            '<w:altChunk xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
            ' xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
            f' r:id="{rel_id}"/>'
        )
        body.insert(len(body) - 1, chunk)  # before the body's w:sectPr
    document.add_paragraph("Closing paragraph.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_imported_html_and_text_chunks_are_read_in_place(tmp_path: Path) -> None:
    """w:altChunk: content imported in another format (Word shows it where it stands)."""
    page = (
        b"<html><head><title>Imported</title><script>var hidden = 'scriptword';</script>"
        b"</head><body><p>The imported page names the okapi sanctuary.</p></body></html>"
    )
    data = _with_alt_chunks(
        [
            ("/word/afchunk1.htm", "text/html", page),
            ("/word/afchunk2.txt", "text/plain", b"Plain import: the narwhal ledger."),
            ("/word/afchunk3.rtf", "application/rtf", b"{\\rtf1 rtfword}"),
        ]
    )
    text = _text_of(tmp_path, data)
    assert text == (
        "Opening paragraph.\n\n# Imported\n\nThe imported page names the okapi sanctuary.\n\n"
        "Plain import: the narwhal ledger.\n\nClosing paragraph."
    )


# -- Strict Open XML (ISO/IEC 29500 Strict) --------------------------------------------------------

OKAPI_PAGE = (
    b"<html><head><title>Imported</title></head>"
    b"<body><p>The imported page names the okapi sanctuary.</p></body></html>"
)
STRICT_CASES = {
    "every part": make.make_docx_with_every_part,
    "merged cells": make.make_docx_with_merged_cells,
    "header variants": make.make_docx_with_header_variants,
    "altChunks": lambda: _with_alt_chunks(
        [
            ("/word/afchunk1.htm", "text/html", OKAPI_PAGE),
            ("/word/afchunk2.txt", "text/plain", b"Plain import: the narwhal ledger."),
        ]
    ),
}


@pytest.mark.parametrize("case", list(STRICT_CASES))
def test_a_strict_docx_reads_exactly_as_its_transitional_twin(tmp_path: Path, case: str) -> None:
    """Word's "Strict Open XML Document": the same WordprocessingML in other namespaces
    (``http://purl.oclc.org/ooxml/...``), the parts found by other relationship types; every
    word, heading, list, table and story of it as in the usual (Transitional) file."""
    transitional = STRICT_CASES[case]()

    assert _text_of(tmp_path, to_strict(transitional)) == _text_of(tmp_path, transitional)
    assert [path.name for path in tmp_path.iterdir()] == ["every.docx"]  # no copy left behind


def test_a_strict_docx_with_only_removed_text_has_no_text(tmp_path: Path) -> None:
    with pytest.raises(NoExtractableText):
        _text_of(tmp_path, to_strict(make.make_docx_with_only_deleted_text()))


def test_a_strict_docx_passes_the_archive_checks_first(tmp_path: Path) -> None:
    data = with_extra_entry(to_strict(make.make_docx_with_every_part()), "word/pad.bin", 8 * 2**20)
    path = tmp_path / "bomb.docx"
    path.write_bytes(data)

    with pytest.raises(DocumentTooLarge, match="zip bomb"):
        extract_docx(path, LIMITS)


async def test_a_strict_docx_imports_its_alt_chunks_after_upload(
    client: httpx.AsyncClient, alice: TestUser, container: Container
) -> None:
    r = await client.post(
        "/upload/document",
        files={"file": ("chunks.docx", to_strict(STRICT_CASES["altChunks"]()), "text/plain")},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    for word in ["Opening", "okapi", "narwhal", "Closing"]:
        hits = await container.retriever.retrieve(alice.id, word, mode="keyword")
        assert r.json()["id"] in {hit.document_id for hit in hits}, word
