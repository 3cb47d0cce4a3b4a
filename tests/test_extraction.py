"""Document extraction: real files in, page texts or a clear 4xx out."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omnichat.documents.extraction import (
    DocumentTooComplex,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    Extractor,
    NoExtractableText,
    UnreadableDocument,
    UnsafeArchive,
    UnsupportedDocumentType,
)
from omnichat.errors import AppError
from omnichat.rag.types import DocumentKind
from omnichat.settings import Settings
from tests import docs_factory as make

ACCEPTED = "PDF, DOCX, PPTX, XLSX, CSV, HTML, TXT or MD"
OWNER = "user-1"


def _settings(**overrides: object) -> Settings:
    return Settings.model_validate({"extraction_workers": 1, **overrides})


@pytest.fixture(scope="module")
def extractor() -> Iterator[Extractor]:
    extractor = Extractor(_settings())
    yield extractor
    extractor.close()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def refused(extractor: Extractor, path: Path, filename: str | None = None) -> AppError:
    with pytest.raises(AppError) as caught:
        await extractor.extract(path, filename, OWNER)
    return caught.value


# -- what comes out ------------------------------------------------------------------------------


async def test_pdf_keeps_pages_and_their_text(extractor: Extractor, tmp_path: Path) -> None:
    pages = ["First page about apples.", "", "Third: café, naïve,   Zürich.\nNext\tline"]
    path = write(tmp_path, "report.pdf", make.make_pdf(pages))

    document = await extractor.extract(path, "report.pdf", OWNER)

    assert document.kind is DocumentKind.PDF
    assert [(page.number, page.text) for page in document.pages] == [
        (1, "First page about apples."),
        (2, ""),  # a blank page keeps its place, so later pages keep their numbers
        (3, "Third: café, naïve, Zürich.\nNext line"),
    ]


async def test_pdf_notes_and_text_boxes_follow_their_pages_text(
    extractor: Extractor, tmp_path: Path
) -> None:
    """A sticky note and a text box are annotations, no part of the page's text layer: a
    reader sees them, so they are read, on their own page, after its text."""
    from fpdf import FPDF
    from fpdf.enums import AnnotationFlag

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.cell(text="Body of the first page.")
    pdf.add_page()
    pdf.cell(text="Body of the second page.")
    pdf.text_annotation(20, 40, "A sticky note about the wombat quarry.")
    pdf.free_text_annotation("A text box naming the zeppelin hangar.", x=20, y=60, w=80, h=20)
    pdf.text_annotation(20, 90, "A hidden note nobody sees.", flags=(AnnotationFlag.HIDDEN,))
    path = write(tmp_path, "notes.pdf", bytes(pdf.output()))

    document = await extractor.extract(path, "notes.pdf", OWNER)

    assert [(page.number, page.text) for page in document.pages] == [
        (1, "Body of the first page."),
        (
            2,
            "Body of the second page.\n\nA sticky note about the wombat quarry.\n\n"
            "A text box naming the zeppelin hangar.",
        ),
    ]


async def test_docx_renders_headings_lists_and_tables_in_order(
    extractor: Extractor, tmp_path: Path
) -> None:
    path = write(tmp_path, "report.docx", make.make_structured_docx())

    document = await extractor.extract(path, "report.docx", OWNER)

    assert document.kind is DocumentKind.DOCX
    assert [page.number for page in document.pages] == [1]
    assert document.pages[0].text == (
        "# Quarterly Report\n\n"
        "Revenue grew in every region.\n\n"
        "## Highlights\n\n"
        "- Faster shipping\n- Lower costs\n1. Hire engineers\n2. Open an office\n\n"
        "| Region | Sales |\n| --- | --- |\n| North | 120 |\n| South | 95 |\n\n"
        "Closing remarks after the table."
    )


async def test_docx_keeps_unicode(extractor: Extractor, tmp_path: Path) -> None:
    text = "東京の天気は晴れです。Emoji: 😀🚀 and Ελληνικά."
    path = write(tmp_path, "u.docx", make.make_docx([text]))

    assert (await extractor.extract(path, None, OWNER)).pages[0].text == text


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
async def test_text_encodings_and_newlines(
    extractor: Extractor, tmp_path: Path, encoding: str
) -> None:
    path = write(tmp_path, "notes.txt", "One\r\nTwo — 東京 😀\rThree\n".encode(encoding))

    document = await extractor.extract(path, "notes.txt", OWNER)

    assert document.kind is DocumentKind.TEXT
    assert [(page.number, page.text) for page in document.pages] == [
        (1, "One\nTwo — 東京 😀\nThree")
    ]


async def test_markdown_keeps_its_layout(extractor: Extractor, tmp_path: Path) -> None:
    path = write(tmp_path, "upload", b"# Title\n\n    indented code\n")

    document = await extractor.extract(path, "README.md", OWNER)

    assert document.kind is DocumentKind.MARKDOWN
    assert document.pages[0].text == "# Title\n\n    indented code"


async def test_type_comes_from_content_not_name(extractor: Extractor, tmp_path: Path) -> None:
    pdf = write(tmp_path, "x.docx", make.make_pdf(["Really a PDF"]))
    word = write(tmp_path, "x.md", make.make_docx(["Really a DOCX"]))

    assert (await extractor.extract(pdf, "x.docx", OWNER)).kind is DocumentKind.PDF
    assert (await extractor.extract(word, "x.md", OWNER)).kind is DocumentKind.DOCX


# -- what is refused -----------------------------------------------------------------------------

REFUSALS = [
    ("encrypted", make.make_encrypted_pdf(), EncryptedDocument, "The PDF is encrypted"),
    ("pdf-truncated", make.make_pdf(["Some text"] * 3)[:400], UnreadableDocument, "PDF is corrupt"),
    ("pdf-garbage", b"%PDF-1.7\n not a pdf", UnreadableDocument, "PDF is corrupt"),
    ("pdf-no-pages", make.make_zero_page_pdf(), UnreadableDocument, "PDF"),
    ("docx-truncated", make.make_docx(["Text"])[:2000], UnreadableDocument, "corrupt"),
    ("docx-broken-xml", make.make_docx_with_broken_body(), UnreadableDocument, "corrupt"),
    ("docx-no-text", make.make_docx(["", " "]), NoExtractableText, "no text"),
    ("txt-whitespace", b" \n\t\n", NoExtractableText, "only whitespace"),
    ("txt-then-binary", b"text\n" * 20_000 + bytes(range(256)), UnsupportedDocumentType, "UTF-8"),
    ("exe", make.EXE_HEADER, UnsupportedDocumentType, ACCEPTED),
    ("png", make.make_png(), UnsupportedDocumentType, ACCEPTED),
    ("gzip", b"\x1f\x8b\x08\x00" + bytes(range(256)), UnsupportedDocumentType, ACCEPTED),
    ("plain-zip", make.make_plain_zip(), UnsupportedDocumentType, "not a Word document"),
    ("empty", b"", EmptyDocument, "empty"),
]


@pytest.mark.parametrize(
    ("data", "error_type", "detail"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSALS],
)
async def test_refused_with_a_helpful_4xx(
    extractor: Extractor, tmp_path: Path, data: bytes, error_type: type[AppError], detail: str
) -> None:
    # Named as the most plausible type, to show the name is not what decides.
    error = await refused(extractor, write(tmp_path, "upload.pdf", data), "upload.pdf")

    assert type(error) is error_type
    assert error.status_code in (413, 415, 422)
    assert detail in error.detail


async def test_scanned_pages_are_left_for_ocr(extractor: Extractor, tmp_path: Path) -> None:
    path = write(tmp_path, "scan.pdf", make.make_image_only_pdf())

    document = await extractor.extract(path, "scan.pdf", OWNER)

    assert document.ocr_pages == (1, 2)
    assert [page.text for page in document.pages] == ["", ""]


async def test_a_scanned_pdf_is_refused_when_ocr_is_off(tmp_path: Path) -> None:
    extractor = Extractor(_settings(ocr_max_pages=0))
    try:
        error = await refused(extractor, write(tmp_path, "scan.pdf", make.make_image_only_pdf()))
    finally:
        extractor.close()

    assert isinstance(error, NoExtractableText)
    assert "OCR is off" in error.detail


async def test_encryption_error_does_not_stick_to_the_next_file(
    extractor: Extractor, tmp_path: Path
) -> None:
    # One worker, and PDFium leaves a stale "password" error behind for the page-less file.
    encrypted = write(tmp_path, "secret.pdf", make.make_encrypted_pdf())
    pageless = write(tmp_path, "none.pdf", make.make_zero_page_pdf())

    assert isinstance(await refused(extractor, encrypted), EncryptedDocument)
    assert isinstance(await refused(extractor, pageless), UnreadableDocument)


async def test_a_crashed_worker_does_not_break_later_extractions(
    extractor: Extractor, tmp_path: Path
) -> None:
    with pytest.raises(DocumentTooComplex, match="crashed"):
        await extractor._parsers.run(OWNER, os._exit, 1, timeout_s=30)

    path = write(tmp_path, "after.pdf", make.make_pdf(["Still working"]))
    document = await extractor.extract(path, None, OWNER)

    assert document.pages[0].text == "Still working"


async def test_zip_bomb_docx_is_refused_before_unpacking(
    extractor: Extractor, tmp_path: Path
) -> None:
    path = tmp_path / "bomb.docx"
    make.make_zip_bomb_docx(path)

    error = await refused(extractor, path)

    assert isinstance(error, DocumentTooLarge)
    assert error.status_code == 413
    assert "zip bomb" in error.detail


@pytest.mark.parametrize(
    ("name", "symlink"),
    [("../evil", False), ("word/../../evil", False), ("/etc/evil", False), ("word/link", True)],
)
async def test_docx_with_an_unsafe_entry_is_refused(
    extractor: Extractor, tmp_path: Path, name: str, symlink: bool
) -> None:
    path = tmp_path / "unsafe.docx"
    make.make_docx_with_entry(path, name, symlink=symlink)

    error = await refused(extractor, path)

    assert isinstance(error, UnsafeArchive)
    assert error.status_code == 422
    assert name in error.detail


@pytest.mark.parametrize(
    ("overrides", "build", "detail"),
    [
        pytest.param(
            {"max_pdf_pages": 2},
            lambda path: path.write_bytes(make.make_pdf(["a", "b", "c"])),
            "The PDF has 3 pages; at most 2",
            id="pdf-pages",
        ),
        pytest.param(
            {"max_docx_uncompressed_bytes": 1024 * 1024, "max_docx_compression_ratio": 10_000},
            lambda path: make.make_zip_bomb_docx(path, zero_bytes=2 * 1024 * 1024),
            "unpacks to",
            id="docx-unpacked-size",
        ),
        pytest.param(
            {"max_docx_entries": 40},
            lambda path: make.make_docx_with_many_entries(path, 50),
            "at most 40 are allowed",
            id="docx-entries",
        ),
        pytest.param(
            {"max_extracted_chars": 1000},
            lambda path: path.write_bytes(b"word " * 500),
            "at most 1000 are accepted",
            id="extracted-chars",
        ),
    ],
)
async def test_configured_limits_are_enforced(
    tmp_path: Path, overrides: dict[str, object], build: Callable[[Path], object], detail: str
) -> None:
    path = tmp_path / "document"
    build(path)
    extractor = Extractor(_settings(**overrides))
    try:
        error = await refused(extractor, path)
    finally:
        extractor.close()

    assert isinstance(error, DocumentTooLarge)
    assert error.status_code == 413
    assert detail in error.detail
