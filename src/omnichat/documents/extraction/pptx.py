"""PPTX (ECMA-376 PresentationML), read with python-pptx (https://python-pptx.readthedocs.io)
after the archive checks of ``archive.check_archive`` (zip bombs, unsafe entries), through
``ooxml.check_package``; a Strict presentation (ISO/IEC 29500 Strict) through
``ooxml.open_package``, as Transitional PresentationML.

Each slide is a page, numbered as the slide (1-based): its title first (``# Title``), then the
text of its other shapes in the slide's order (placeholders, text boxes and autoshapes, the
shapes inside groups, tables as Markdown tables), then its speaker notes (``Notes: ...``). A
slide without text is an empty page, so later slides keep their numbers. Charts, pictures and
the text of layouts and masters (footers, placeholder prompts) are not indexed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pptx
from pptx.enum.shapes import MSO_SHAPE_TYPE
from pptx.shapes.autoshape import Shape
from pptx.shapes.base import BaseShape
from pptx.shapes.graphfrm import GraphicFrame
from pptx.shapes.group import GroupShape
from pptx.slide import Slide

from omnichat.documents.extraction.archive import ArchiveLimits
from omnichat.documents.extraction.errors import NoExtractableText, UnreadableDocument
from omnichat.documents.extraction.ooxml import check_package, open_package
from omnichat.documents.extraction.tables import TextBudget, cell_text, markdown_table
from omnichat.documents.extraction.text import clean_text
from omnichat.errors import AppError
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage

if TYPE_CHECKING:
    from omnichat.documents.extraction.parse import Deadline

logger = logging.getLogger("omnichat.documents.pptx")
CORRUPT_DETAIL = "The PPTX file is corrupt or malformed and could not be read"


def extract_pptx(
    path: Path, archive: ArchiveLimits, max_chars: int, deadline: Deadline
) -> ExtractedDocument:
    """One page per slide. Blocking: run it in a sandbox worker."""
    check_package(path, archive, "PPTX")
    budget = TextBudget(max_chars)
    try:
        with open_package(path) as package:  # Strict as Transitional; every part read here
            presentation = pptx.Presentation(package)
        pages = []
        for number, slide in enumerate(presentation.slides, start=1):
            deadline.check()
            text = clean_text("\n\n".join(_slide_blocks(slide, deadline)))
            budget.spend(len(text))
            pages.append(ExtractedPage(number=number, text=text))
    except AppError:
        raise
    except Exception as exc:  # any failure to parse an untrusted file is the file's fault
        logger.info("unreadable PPTX: %s: %s", type(exc).__name__, exc)
        raise UnreadableDocument(CORRUPT_DETAIL) from exc
    if not any(page.text for page in pages):
        raise NoExtractableText("The presentation contains no text")
    return ExtractedDocument(kind=DocumentKind.PPTX, pages=pages)


def _slide_blocks(slide: Slide, deadline: Deadline) -> Iterator[str]:
    title = slide.shapes.title
    if isinstance(title, Shape):
        heading = _frame_text(title).replace("\n", " ").strip()
        if heading:
            yield f"# {heading}"
    for shape in _shapes(slide.shapes, deadline):
        if title is not None and shape.shape_id == title.shape_id:
            continue
        block = _shape_text(shape)
        if block:
            yield block
    if slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = frame.text.replace("\v", "\n").strip() if frame is not None else ""
        if notes:
            yield f"Notes: {notes}"


def _shapes(shapes: Iterable[BaseShape], deadline: Deadline) -> Iterator[BaseShape]:
    """The shapes in the slide's order, groups opened (iteratively: groups nest freely)."""
    stack: list[Iterator[BaseShape]] = [iter(shapes)]
    while stack:
        shape = next(stack[-1], None)
        if shape is None:
            stack.pop()
            continue
        deadline.check()
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP and isinstance(shape, GroupShape):
            stack.append(iter(shape.shapes))
        else:
            yield shape


def _shape_text(shape: BaseShape) -> str:
    if isinstance(shape, GraphicFrame) and shape.has_table:
        rows = [[cell_text(cell.text) for cell in row.cells] for row in shape.table.rows]
        return markdown_table(rows)
    if isinstance(shape, Shape):
        return _frame_text(shape)
    return ""


def _frame_text(shape: Shape) -> str:
    lines = (p.text.replace("\v", "\n").strip() for p in shape.text_frame.paragraphs)
    return "\n".join(line for line in lines if line)
