"""The checks every Office Open XML upload (DOCX, PPTX, XLSX) passes before anything in it is
unpacked: entry count, unpacked size, compression ratio (zip bombs), and entries that would
escape the archive (absolute paths, ``..``, symbolic links). The ``OMNICHAT_MAX_DOCX_*``
settings set them, for every format."""

from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from omnichat.documents.extraction.errors import (
    DocumentTooLarge,
    UnreadableDocument,
    UnsafeArchive,
)

# Small entries compress well legitimately (XML of repeated styles); only big ones are judged.
RATIO_CHECK_MIN_BYTES = 1024 * 1024
_DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")
_PATH_SEPARATORS = re.compile(r"[\\/]")


@dataclass(frozen=True)
class ArchiveLimits:
    max_uncompressed_bytes: int
    max_entries: int
    max_compression_ratio: float


def check_archive(path: Path, limits: ArchiveLimits, label: str = "DOCX") -> None:
    """Refuse zip bombs and entries escaping the archive, reading only the central directory.
    (``zipfile`` never inflates an entry past its declared size, so the declared sizes hold.)
    The same checks guard PPTX and XLSX; ``label`` names the format in the errors."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableDocument(
            f"The {label} file is corrupt or malformed and could not be read"
        ) from exc
    if len(entries) > limits.max_entries:
        raise DocumentTooLarge(
            f"The {label} archive has {len(entries)} entries; "
            f"at most {limits.max_entries} are allowed"
        )
    total_bytes = 0
    for entry in entries:
        if _is_unsafe_entry(entry):
            raise UnsafeArchive(
                f"The {label} file contains an unsafe entry ({entry.filename!r}) and was refused"
            )
        total_bytes += entry.file_size
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > RATIO_CHECK_MIN_BYTES and ratio > limits.max_compression_ratio:
            raise DocumentTooLarge(
                f"The {label} file looks like a zip bomb: an entry expands "
                f"{ratio:.0f}-fold (at most {limits.max_compression_ratio:g} is allowed)"
            )
    if total_bytes > limits.max_uncompressed_bytes:
        raise DocumentTooLarge(
            f"The {label} file unpacks to {total_bytes} bytes; "
            f"at most {limits.max_uncompressed_bytes} are allowed"
        )


def _is_unsafe_entry(entry: zipfile.ZipInfo) -> bool:
    name = entry.filename
    if name.startswith(("/", "\\")) or _DRIVE_PREFIX.match(name):
        return True
    if ".." in _PATH_SEPARATORS.split(name):
        return True
    return stat.S_ISLNK(entry.external_attr >> 16)
