"""Which Office Open XML document a ZIP archive is, from its package parts, never its name.

ECMA-376 Part 2 (Open Packaging Conventions): the package relationship of type
``.../officeDocument`` in ``_rels/.rels`` names the main part, and ``[Content_Types].xml`` gives
that part's content type (an ``Override`` for the part, else the ``Default`` for its extension).
The content type decides: a Word document (what python-docx reads, macro-enabled and templates
included), a presentation (what
python-pptx reads, macro-enabled included) or a workbook (what openpyxl reads, templates and
macro-enabled included). Only those two small entries are read, at most ``MAX_PART_BYTES`` each,
with an XML parser that resolves no entities and loads nothing.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from lxml import etree

from omnichat.documents.extraction.archive import ArchiveLimits, check_archive
from omnichat.documents.extraction.errors import (
    ACCEPTED_TYPES,
    UnreadableDocument,
    UnsupportedDocumentType,
)
from omnichat.errors import AppError
from omnichat.rag.types import DocumentKind

CONTENT_TYPES_PART = "[Content_Types].xml"
PACKAGE_RELS_PART = "_rels/.rels"
OFFICE_DOCUMENT = "/officeDocument"  # the end of the relationship type, transitional or strict
MAX_PART_BYTES = 1024 * 1024
_WORD = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_PML = "application/vnd.openxmlformats-officedocument.presentationml"
_SML = "application/vnd.openxmlformats-officedocument.spreadsheetml"
MAIN_CONTENT_TYPES = {
    _WORD: DocumentKind.DOCX,
    "application/vnd.ms-word.document.macroEnabled.main+xml": DocumentKind.DOCX,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml": (
        DocumentKind.DOCX
    ),
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml": DocumentKind.DOCX,
    f"{_PML}.presentation.main+xml": DocumentKind.PPTX,
    "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml": DocumentKind.PPTX,
    f"{_SML}.sheet.main+xml": DocumentKind.XLSX,
    f"{_SML}.template.main+xml": DocumentKind.XLSX,
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml": DocumentKind.XLSX,
    "application/vnd.ms-excel.template.macroEnabled.main+xml": DocumentKind.XLSX,
}
NOT_OFFICE_DETAIL = (
    "This ZIP archive is not a Word document, PowerPoint presentation or Excel workbook; "
    f"upload a {ACCEPTED_TYPES} file"
)
CORRUPT_DETAIL = (
    "The file is a ZIP archive (as DOCX, PPTX and XLSX files are) but is corrupt or truncated"
)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def office_kind(path: Path) -> DocumentKind:
    """DOCX, PPTX or XLSX; ``UnsupportedDocumentType`` (415) for any other ZIP archive,
    ``UnreadableDocument`` (422) for a corrupt one."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = {name.lower(): name for name in archive.namelist()}
            if CONTENT_TYPES_PART.lower() not in names or PACKAGE_RELS_PART not in names:
                raise UnsupportedDocumentType(NOT_OFFICE_DETAIL)
            content_types = _read_xml(archive, names[CONTENT_TYPES_PART.lower()])
            relationships = _read_xml(archive, names[PACKAGE_RELS_PART])
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UnreadableDocument(CORRUPT_DETAIL) from exc
    main_part = _main_part(relationships)
    content_type = _content_type(content_types, main_part) if main_part else None
    kind = MAIN_CONTENT_TYPES.get(content_type or "")
    if kind is None:
        raise UnsupportedDocumentType(NOT_OFFICE_DETAIL)
    return kind


def _read_xml(archive: zipfile.ZipFile, name: str) -> etree._Element:
    with archive.open(name) as entry:
        data = entry.read(MAX_PART_BYTES + 1)
    if len(data) > MAX_PART_BYTES:
        raise UnreadableDocument(f"{CORRUPT_DETAIL}: its {name} is too large")
    try:
        return etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise UnreadableDocument(f"{CORRUPT_DETAIL}: its {name} is malformed") from exc


def _local_name(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _main_part(relationships: etree._Element) -> str | None:
    """The main part's name, ``/word/document.xml`` style (lower case: part names are
    case-insensitive)."""
    for relationship in relationships:
        if (
            _local_name(relationship) == "Relationship"
            and relationship.get("Type", "").endswith(OFFICE_DOCUMENT)
            and relationship.get("TargetMode", "Internal") == "Internal"
        ):
            target = relationship.get("Target", "").lstrip("/")
            return "/" + str(PurePosixPath(target)).lower() if target else None
    return None


def _content_type(content_types: etree._Element, part: str) -> str | None:
    extension = PurePosixPath(part).suffix.lstrip(".")
    default = None
    for entry in content_types:
        name = _local_name(entry)
        if name == "Override" and entry.get("PartName", "").lower() == part:
            return entry.get("ContentType")
        if name == "Default" and entry.get("Extension", "").lower() == extension:
            default = entry.get("ContentType")
    return default


def check_package(path: Path, limits: ArchiveLimits, label: str) -> None:
    """``archive.check_archive`` (zip bombs, unsafe entries; the ``OMNICHAT_MAX_DOCX_*`` limits)
    for a PPTX or XLSX, its errors naming ``label`` rather than DOCX."""
    try:
        check_archive(path, limits)
    except AppError as exc:
        raise type(exc)(exc.detail.replace("DOCX", label)) from exc
