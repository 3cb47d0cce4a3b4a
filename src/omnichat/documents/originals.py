"""A document's original, read back only when it is provably that document's own: under its
own key, not marked unavailable, and matching the SHA-256 recorded at upload."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator

from omnichat.blobs.base import BlobNotFound, BlobStore
from omnichat.documents.models import Document
from omnichat.errors import Gone

ORIGINAL_UNAVAILABLE = (
    "The original file of this document is not available: an earlier version stored it where "
    "another upload overwrote it. The document is still searchable; upload the file again to "
    "download it."
)
ORIGINAL_MISSING = "The original file of this document is missing from the blob store"
ORIGINAL_MISMATCH = (
    "The stored original of this document does not match the uploaded file (SHA-256 differs)"
)


logger = logging.getLogger("omnichat.documents")


class OriginalUnavailable(Gone):
    """410: the document exists, its original file does not (or is not its own)."""

    detail = ORIGINAL_UNAVAILABLE


class OriginalMismatch(RuntimeError):
    """Raised after the last piece of a streamed original that was not the document's: the
    response has started, so the only honest answer left is to cut it off."""


async def read_original(blobs: BlobStore, document: Document) -> bytes:
    """The original's bytes. Raises ``OriginalUnavailable`` when they cannot be this document's."""
    if not document.has_original:
        raise OriginalUnavailable()
    try:
        data = await blobs.read(document.blob_key)
    except BlobNotFound:
        raise OriginalUnavailable(ORIGINAL_MISSING) from None
    if hashlib.sha256(data).hexdigest() != document.sha256:
        raise OriginalUnavailable(ORIGINAL_MISMATCH)
    return data


async def stream_original(blobs: BlobStore, document: Document) -> AsyncIterator[bytes]:
    """The original in pieces, hashed on the way: if the bytes turn out not to match the
    document's SHA-256, the stream fails after the last piece, so the response is cut off
    (no terminating chunk) and no client takes it for the file. ``OriginalUnavailable``
    before the first piece when the document has no original of its own."""
    if not document.has_original:
        raise OriginalUnavailable()
    digest = hashlib.sha256()
    try:
        async for piece in blobs.stream(document.blob_key):
            digest.update(piece)
            yield piece
    except BlobNotFound:
        raise OriginalUnavailable(ORIGINAL_MISSING) from None
    if digest.hexdigest() != document.sha256:
        logger.error(ORIGINAL_MISMATCH, extra={"document_id": document.id})
        raise OriginalMismatch(ORIGINAL_MISMATCH)
