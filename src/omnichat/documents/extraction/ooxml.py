"""Which Office Open XML document a ZIP archive is, from its package parts, never its name.

ECMA-376 Part 2 (Open Packaging Conventions): the package relationship of type
``.../officeDocument`` in ``_rels/.rels`` names the main part, and ``[Content_Types].xml`` gives
that part's content type (an ``Override`` for the part, else the ``Default`` for its extension).
The content type decides: a Word document (what python-docx reads, macro-enabled and templates
included), a presentation (what
python-pptx reads, macro-enabled included) or a workbook (what openpyxl reads, templates and
macro-enabled included). Only those two small entries are read, at most ``MAX_PART_BYTES`` each,
with an XML parser that resolves no entities and loads nothing.

ISO/IEC 29500 Strict ("Strict Open XML", a choice in Office's Save As) has the same parts and
content types, but its markup is in other namespaces and its parts are related by other types:
``http://purl.oclc.org/ooxml/wordprocessingml/main`` for
``http://schemas.openxmlformats.org/wordprocessingml/2006/main``,
``http://purl.oclc.org/ooxml/officeDocument/relationships/header`` for
``http://schemas.openxmlformats.org/officeDocument/2006/relationships/header``, and so on
(``transitional_uri``). python-docx and python-pptx know only the Transitional ones, so
``open_package`` gives them a Strict package as a Transitional copy (calamine reads Strict
workbooks itself). The package's own namespaces (content types, relationships) are the same in
both.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

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

# ISO/IEC 29500 Strict's URIs and their Transitional twins (ECMA-376 Part 1; the tables of
# LibreOffice's oox/source/token/namespaces-strict.txt and dotnet/Open-XML-SDK): one rule, with
# the few names that differ spelled out.
STRICT_PREFIX = "http://purl.oclc.org/ooxml/"
_TRANSITIONAL_PREFIX = "http://schemas.openxmlformats.org/"
# Enough of a part for its root element's namespace declarations (Word's are ~3 KB).
STRICT_SNIFF_BYTES = 32 * 1024
_STRICT_FORMS = tuple(
    STRICT_PREFIX.encode(encoding) for encoding in ("utf-8", "utf-16-le", "utf-16-be")
)
_STRICT_RELATIONSHIPS = f"{STRICT_PREFIX}officeDocument/relationships/"
_AREAS = frozenset(
    [
        "officeDocument",
        "wordprocessingml",
        "presentationml",
        "spreadsheetml",
        "drawingml",
        "schemaLibrary",
    ]
)
_RENAMED = {
    "officeDocument/extendedProperties": "officeDocument/2006/extended-properties",
    "officeDocument/customProperties": "officeDocument/2006/custom-properties",
    "officeDocument/relationships/extendedProperties": (
        "officeDocument/2006/relationships/extended-properties"
    ),
    "officeDocument/relationships/customProperties": (
        "officeDocument/2006/relationships/custom-properties"
    ),
    "officeDocument/relationships/metadata/thumbnail": (
        "package/2006/relationships/metadata/thumbnail"
    ),
}
# The XML of a part, token by token: a comment, CDATA section or processing instruction (left
# as it is; one left open runs to the end), or a start tag (its attribute values quoted, where a
# '>' may stand, never a '<') with a Strict URI before the next '<' (the others are skipped here,
# not in Python). Character data never holds a '<', so no text is taken for a tag. Possessive,
# and never failing far from where it started: linear in the part's size.
_MARKUP = re.compile(
    rb"<!--.*?(?:-->|\Z)|<!\[CDATA\[.*?(?:\]\]>|\Z)|<\?.*?(?:\?>|\Z)"
    rb"|<[^\s<>/!?](?=[^<]*?" + re.escape(STRICT_PREFIX.encode()) + rb")"
    rb"""(?:[^<>"']++|"[^"<]*+"|'[^'<]*+')*+>""",
    re.DOTALL,
)
_QUOTED = re.compile(rb""""[^"]*+"|'[^']*+'""")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


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


def transitional_uri(uri: str) -> str:
    """The Transitional twin of a Strict namespace, relationship type or graphic-data URI
    (``http://purl.oclc.org/ooxml/drawingml/main`` ->
    ``http://schemas.openxmlformats.org/drawingml/2006/main``); any other URI as it is."""
    if not uri.startswith(STRICT_PREFIX):
        return uri
    name = uri[len(STRICT_PREFIX) :]
    if name in _RENAMED:
        return _TRANSITIONAL_PREFIX + _RENAMED[name]
    area, _, rest = name.partition("/")
    return f"{_TRANSITIONAL_PREFIX}{area}/2006/{rest}" if area in _AREAS and rest else uri


def transitional_xml(data: bytes) -> bytes:
    """A part's XML with every Strict URI in its namespace declarations, relationship types
    and graphic-data URIs made Transitional; nothing else changes (names, prefixes, text,
    ``conformance``). UTF-8 or UTF-16, as OPC allows."""
    if data.startswith(_UTF16_BOMS):
        text = data.decode("utf-16")
        if STRICT_PREFIX not in text:
            return data
        return transitional_xml(text.encode()).decode().encode("utf-16")
    if STRICT_PREFIX.encode() not in data:
        return data
    return _MARKUP.sub(_transitional_tag, data)


def _transitional_tag(token: re.Match[bytes]) -> bytes:
    """A start tag with the Strict URIs of its namespace declarations, ``Type`` and ``uri``
    made Transitional (each attribute value taken whole, never read inside another's)."""
    markup = token[0]
    if markup[1:2] in (b"!", b"?") or STRICT_PREFIX.encode() not in markup:
        return markup
    pieces, position = [], 0
    for value in _QUOTED.finditer(markup):
        before = markup[position : value.start()]
        pieces += [before, _transitional_value(before, value[0])]
        position = value.end()
    pieces.append(markup[position:])
    return b"".join(pieces)


def _transitional_value(before: bytes, quoted: bytes) -> bytes:
    """``quoted`` (with its quotes), the value of the attribute whose name ends ``before``."""
    head = before.rstrip()
    if not head.endswith(b"=") or not quoted[1:].startswith(STRICT_PREFIX.encode()):
        return quoted
    words = head[:-1].split()
    name = words[-1] if words else b""
    if name not in (b"xmlns", b"Type", b"uri") and not name.startswith(b"xmlns:"):
        return quoted
    uri = transitional_uri(quoted[1:-1].decode("utf-8", "surrogateescape"))
    return quoted[:1] + uri.encode("utf-8", "surrogateescape") + quoted[-1:]


@contextmanager
def open_package(path: Path) -> Iterator[BinaryIO]:
    """The package to hand to python-docx or python-pptx, open for reading: the file itself,
    or, when its main part is related as Strict's is (ISO/IEC 29500 Strict) or any XML part
    declares a Strict namespace at its start (a Transitional package with Strict parts, which
    the libraries would read as empty), a temporary uncompressed copy beside it whose XML
    parts are ``transitional_xml``. Run it after ``archive.check_archive``: the copy holds
    what the archive declares, no more."""
    with zipfile.ZipFile(path) as archive:
        names = {name.lower(): name for name in archive.namelist()}
        relationships = names.get(PACKAGE_RELS_PART)
        content_types = names.get(CONTENT_TYPES_PART.lower())
        xml_part = _xml_parts(_read_xml(archive, content_types) if content_types else None)
        strict = relationships is not None and _is_strict(_read_xml(archive, relationships))
        if strict or any(
            xml_part(entry.filename) and _declares_strict(archive, entry)
            for entry in archive.infolist()
        ):
            with tempfile.TemporaryFile(dir=path.parent) as copy:
                _write_transitional(archive, xml_part, copy)
                copy.seek(0)
                yield copy
            return
    with path.open("rb") as package:
        yield package


def _write_transitional(
    archive: zipfile.ZipFile, xml_part: Callable[[str], bool], copy: BinaryIO
) -> None:
    with zipfile.ZipFile(copy, "w", zipfile.ZIP_STORED) as out:
        for entry in archive.infolist():
            info = zipfile.ZipInfo(entry.filename, entry.date_time)
            if xml_part(entry.filename):
                out.writestr(info, transitional_xml(archive.read(entry)))
                continue
            large = entry.file_size > zipfile.ZIP64_LIMIT
            with archive.open(entry) as source, out.open(info, "w", force_zip64=large) as target:
                shutil.copyfileobj(source, target)


def _declares_strict(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bool:
    """Whether the part's first ``STRICT_SNIFF_BYTES`` (its root element's namespace
    declarations) name a Strict URI, in UTF-8 or UTF-16."""
    with archive.open(entry) as part:
        start = part.read(STRICT_SNIFF_BYTES)
    return any(form in start for form in _STRICT_FORMS)


def _is_strict(relationships: etree._Element) -> bool:
    return any(
        _local_name(relationship) == "Relationship"
        and relationship.get("Type", "") == f"{_STRICT_RELATIONSHIPS}officeDocument"
        for relationship in relationships
    )


def _xml_parts(content_types: etree._Element | None) -> Callable[[str], bool]:
    """Whether the entry of that name is an XML part: its content type (an ``Override``, else
    the ``Default`` for its extension) is XML (``application/xml``, ``text/xml``, ``...+xml``;
    relationship parts always)."""
    overrides: dict[str, str] = {}
    defaults: dict[str, str] = {}
    for entry in content_types if content_types is not None else ():
        name = _local_name(entry)
        if name == "Override":
            overrides[entry.get("PartName", "").lower()] = entry.get("ContentType", "")
        elif name == "Default":
            defaults[entry.get("Extension", "").lower()] = entry.get("ContentType", "")

    def is_xml(entry_name: str) -> bool:
        part = "/" + entry_name.lower()
        if part.endswith(".rels"):
            return True
        extension = PurePosixPath(part).suffix.lstrip(".")
        content_type = overrides.get(part, defaults.get(extension, "")).split(";")[0].strip()
        return content_type.endswith("+xml") or content_type in ("application/xml", "text/xml")

    return is_xml
