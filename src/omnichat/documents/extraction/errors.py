"""Why a document could not be turned into text. Each is an ``AppError``, so it becomes a 4xx."""

from __future__ import annotations

from omnichat.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

ACCEPTED_TYPES = "PDF, DOCX, PPTX, XLSX, CSV, HTML, TXT or MD"


class UnsupportedDocumentType(UnsupportedMediaType):
    detail = f"Unsupported file type; upload a {ACCEPTED_TYPES} file"


class EmptyDocument(InvalidInput):
    detail = "The file is empty"


class UnreadableDocument(InvalidInput):
    """The file is of a supported type but damaged or malformed."""

    detail = "The file is corrupt or malformed and could not be read"


class EncryptedDocument(InvalidInput):
    detail = "The PDF is encrypted or password-protected; upload an unprotected copy"


class NoExtractableText(InvalidInput):
    detail = "The document contains no extractable text"


class UnsafeArchive(InvalidInput):
    """A DOCX whose zip entries point outside the archive (absolute paths, ``..``, symlinks)."""

    detail = "The DOCX file contains unsafe entries and was refused"


class DocumentTooLarge(PayloadTooLarge):
    """Over a configured limit: pages, extracted characters, or unpacked DOCX size."""

    detail = "The document is too large to process"


class DocumentTooComplex(InvalidInput):
    """Its parser ran out of the time or memory one document may use (a decompression bomb,
    a pathological structure): the worker was stopped, nothing was stored."""

    def __init__(self, why: str) -> None:
        super().__init__(f"The document is too complex to index: it {why}")


def ran_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` or anything that caused it is a failed allocation: a ``MemoryError``, or
    libxml2's ``ERR_NO_MEMORY``, which lxml raises as an ``XMLSyntaxError`` ("unknown error")
    that a parser would otherwise report as a corrupt file."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MemoryError) or any(
            getattr(entry, "type_name", "") == "ERR_NO_MEMORY"
            for entry in getattr(seen, "error_log", ())
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
