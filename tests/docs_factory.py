"""Real PDF and DOCX files built at test time, good and hostile."""

from __future__ import annotations

import io
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import docx
import pypdfium2 as pdfium
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

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


def text_image(lines: list[str], size: tuple[int, int] = (1400, 600)) -> Image.Image:
    """A picture of printed lines, as a scanner would see them: black on white, a clear font."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    for number, line in enumerate(lines):
        draw.text((40, 40 + number * 70), line, fill="black", font=font)
    return image


def make_scanned_pdf(pages: list[tuple[str, list[str]]]) -> bytes:
    """Pages of three sorts: ``("scan", lines)`` a picture of those lines and no text layer,
    ``("text", lines)`` ordinary text, ``("blank", [])`` a picture of nothing, ``("empty", [])``
    a page with nothing on it at all."""
    pdf = _fpdf()
    pdf.set_font("Helvetica", size=12)
    for sort, lines in pages:
        pdf.add_page()
        if sort == "text":
            pdf.multi_cell(0, 8, "\n".join(lines))
        elif sort != "empty":
            picture = text_image(lines) if sort == "scan" else Image.new("RGB", (700, 300), "white")
            pdf.image(picture, x=10, y=10, w=190)
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


def make_shared_stream_pdf(pages: int = 250, operations: int = 60_000) -> bytes:
    """A small PDF whose every page draws the same content stream of ``operations`` text
    operators: a few dozen KB that cost a reader the stream ``pages`` times over."""
    content = b"BT /F1 1 Tf " + b"(x) Tj 0.01 0 Td " * operations + b"ET"
    stream = zlib.compress(content, 9)
    kids = " ".join(f"{5 + n} 0 R" for n in range(pages)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(pages).encode() + b" >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length "
        + str(len(stream)).encode()
        + b" /Filter /FlateDecode >>\nstream\n"
        + stream
        + b"\nendstream",
    ]
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
    )
    objects += [page] * pages
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def make_heavy_docx(path: Path, paragraphs: int = 400_000) -> None:
    """A DOCX of ~0.2 MB whose document.xml (~14 MB, within the ratio and size checks) holds
    ``paragraphs`` tiny paragraphs: cheap to send, costly to read."""
    source = zipfile.ZipFile(io.BytesIO(make_docx(["seed"])))
    xml = source.read("word/document.xml").decode()
    body = "".join(f"<w:p><w:r><w:t>w{n % 97}</w:t></w:r></w:p>" for n in range(paragraphs))
    start = xml.index("<w:body>") + len("<w:body>")
    xml = xml[:start] + body + xml[start:]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            data = xml.encode() if item.filename == "word/document.xml" else source.read(item)
            out.writestr(item.filename, data)


def make_varied_pdf(page_count: int) -> bytes:
    """Pages of each sort a PDF reader tells apart, in turn: text; text with a sticky note and
    a text box (annotations); a picture with no text layer (left for OCR); nothing at all."""
    pdf = _fpdf()
    pdf.set_font("Helvetica", size=12)
    picture = Image.new("RGB", (200, 280), "white")
    for number in range(1, page_count + 1):
        pdf.add_page()
        sort = number % 4
        if sort in (1, 2):
            pdf.multi_cell(0, 8, f"Page {number} of the harbour log: tides, cargo and weather.")
        if sort == 2:
            pdf.text_annotation(20, 60, f"A sticky note on page {number}.")
            pdf.free_text_annotation(f"A text box on page {number}.", x=20, y=80, w=80, h=20)
        elif sort == 3:
            pdf.image(picture, x=10, y=10, w=100)
    return bytes(pdf.output())
