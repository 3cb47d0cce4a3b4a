"""Real PDF and DOCX files built at test time, good and hostile."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import docx
import pypdfium2 as pdfium
from fpdf import FPDF
from PIL import Image

# A fixed creation date: the same pages make the same bytes (fpdf2 stamps the current time).
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
EXE_HEADER = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(496)


def _fpdf() -> FPDF:
    pdf = FPDF()
    pdf.set_creation_date(CREATED)
    return pdf


def make_pdf(pages: list[str]) -> bytes:
    """One page per string, in a core font (Latin-1 text only)."""
    pdf = _fpdf()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_image_only_pdf(page_count: int = 2) -> bytes:
    """A "scanned" PDF: pictures of pages, no text layer."""
    pdf = _fpdf()
    for _ in range(page_count):
        pdf.add_page()
        pdf.image(Image.new("RGB", (200, 280), "white"), x=10, y=10, w=100)
    return bytes(pdf.output())


def make_encrypted_pdf() -> bytes:
    """Needs the user password to open (an owner password alone still opens)."""
    pdf = _fpdf()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.cell(text="Top secret")
    pdf.set_encryption(owner_password="owner-pass", user_password="user-pass")
    return bytes(pdf.output())


def make_zero_page_pdf() -> bytes:
    buffer = io.BytesIO()
    document = pdfium.PdfDocument.new()
    document.save(buffer)
    document.close()
    return buffer.getvalue()


def make_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def make_plain_zip() -> bytes:
    """A ZIP archive that is not a Word document."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    return buffer.getvalue()


def make_docx(paragraphs: list[str]) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    return _save(document)


def make_structured_docx() -> bytes:
    """A heading, bullets, a numbered list, a table and body text, in that order."""
    document = docx.Document()
    document.add_heading("Quarterly Report", level=1)
    document.add_paragraph("Revenue grew in every region.")
    document.add_heading("Highlights", level=2)
    document.add_paragraph("Faster shipping", style="List Bullet")
    document.add_paragraph("Lower costs", style="List Bullet")
    document.add_paragraph("Hire engineers", style="List Number")
    document.add_paragraph("Open an office", style="List Number")
    table = document.add_table(rows=3, cols=2)
    rows = [("Region", "Sales"), ("North", "120"), ("South", "95")]
    for row, values in zip(table.rows, rows, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_paragraph("Closing remarks after the table.")
    return _save(document)


def make_zip_bomb_docx(path: Path, zero_bytes: int = 64 * 1024 * 1024) -> None:
    """A valid DOCX plus one entry of ``zero_bytes`` zeros (compresses about 1000-fold).
    Streamed in, so building it needs little memory."""
    _copy_docx_with(path, extra_entries=[])
    block = bytes(1024 * 1024)
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("word/media/padding.bin", "w", force_zip64=True) as entry,
    ):
        for _ in range(zero_bytes // len(block)):
            entry.write(block)


def make_docx_with_entry(path: Path, name: str, *, symlink: bool = False) -> None:
    """A valid DOCX with one more entry called ``name`` (e.g. ``../evil``)."""
    entry = zipfile.ZipInfo(name)
    if symlink:
        entry.create_system = 3  # Unix, so the mode bits in external_attr count
        entry.external_attr = 0o120777 << 16
    _copy_docx_with(path, extra_entries=[entry])


def make_docx_with_many_entries(path: Path, count: int) -> None:
    _copy_docx_with(path, extra_entries=[zipfile.ZipInfo(f"extra/{n}.xml") for n in range(count)])


def make_docx_with_broken_body() -> bytes:
    """A well-formed zip whose word/document.xml is not XML."""
    source = zipfile.ZipFile(io.BytesIO(make_docx(["fine"])))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                data = b"<w:document this is not xml"
            archive.writestr(info, data)
    return buffer.getvalue()


def _copy_docx_with(path: Path, extra_entries: list[zipfile.ZipInfo]) -> None:
    path.write_bytes(make_docx(["An ordinary document."]))
    with zipfile.ZipFile(path, "a") as archive:
        for entry in extra_entries:
            archive.writestr(entry, b"x")


def _save(document: docx.document.Document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
