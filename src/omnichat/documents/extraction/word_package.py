"""Opening any kind of Word package, and the content a document imports in other formats.

python-docx reads a .docx only (``docx.Document`` checks the main part's content type); the
main parts of Word's other kinds are the same WordprocessingML, so they are mapped to its
``DocumentPart`` here: macro-enabled documents (.docm; macros are never run, only the text is
read) and templates (.dotx, .dotm). A "Strict Open XML Document" (ISO/IEC 29500 Strict) is
opened through ``ooxml.open_package``, as Transitional WordprocessingML.

A ``w:altChunk`` (ECMA-376 Part 1, §17.17.2.1) imports a part of the package in another format
where it stands: an HTML page or plain text is read (by the HTML reader's rules); any other
format (RTF, MHT, a nested package) is logged and left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from docx.document import Document
from docx.opc.part import Part, PartFactory
from docx.package import Package
from docx.parts.document import DocumentPart

from omnichat.documents.extraction.errors import UnreadableDocument
from omnichat.documents.extraction.html import html_text
from omnichat.documents.extraction.ooxml import open_package
from omnichat.documents.extraction.text import clean_text, decode_file

if TYPE_CHECKING:
    from omnichat.documents.extraction.parse import Deadline

logger = logging.getLogger("omnichat.documents.docx")
CORRUPT_DETAIL = "The DOCX file is corrupt or malformed and could not be read"
WORD_MAIN_CONTENT_TYPES = (
    "application/vnd.ms-word.document.macroEnabled.main+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
)
for _content_type in WORD_MAIN_CONTENT_TYPES:
    PartFactory.part_type_for.setdefault(_content_type, DocumentPart)

HTML_CHUNKS = frozenset({"text/html", "application/xhtml+xml"})
# An altChunk read without a document deadline (tests) still has one.
ALT_CHUNK_DEADLINE_S = 60.0


def open_word_document(path: Path) -> Document:
    """The document of any Word package, Transitional or Strict (``UnreadableDocument`` when
    its main part is none). python-docx reads every part as it opens the package."""
    with open_package(path) as package:
        part = Package.open(package).main_document_part
    if not isinstance(part, DocumentPart):
        raise UnreadableDocument(CORRUPT_DETAIL)
    document: Document = part.document
    return document


def alt_chunk_text(part: Part, deadline: Deadline | None) -> str:
    """The text of the part a w:altChunk imports: an HTML page's main text, plain text as it
    is; ``""`` for another format (logged)."""
    content_type = part.content_type.split(";")[0].strip().lower()
    if content_type in HTML_CHUNKS:
        from omnichat.documents.extraction.parse import Deadline

        return html_text(part.blob, deadline or Deadline(ALT_CHUNK_DEADLINE_S))
    if content_type == "text/plain":
        return clean_text(decode_file(part.blob))
    logger.info("DOCX altChunk of type %s left out", content_type)
    return ""
