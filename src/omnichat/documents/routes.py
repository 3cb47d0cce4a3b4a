"""Seed 003's ``POST /upload/document`` and the documents endpoints around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from fastapi.responses import StreamingResponse

from omnichat.blobs.base import BlobNotFound
from omnichat.deps import CurrentUser, DocumentsDep, PageDep
from omnichat.documents.schemas import DocumentOut
from omnichat.errors import NotFound

router = APIRouter(tags=["documents"])

MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
}


@router.post(
    "/upload/document",
    response_model=DocumentOut,
    responses={202: {"description": "Accepted (``?background=true``): poll the document"}},
)
async def upload_document(
    user: CurrentUser,
    documents: DocumentsDep,
    response: Response,
    file: Annotated[UploadFile, File(description="PDF, DOCX, TXT or MD")],
    session_id: Annotated[str | None, Form(min_length=1, max_length=64)] = None,
    background: Annotated[bool, Query(description="Answer 202 at once; poll")] = False,
) -> DocumentOut:
    """Answers when the document is indexed (``ready``), or at once with 202 and status
    ``processing`` with ``?background=true``."""
    document, indexing = await documents.upload(user.id, file.file, file.filename, session_id)
    if background:
        response.status_code = status.HTTP_202_ACCEPTED
        return DocumentOut.of(document)
    # Shielded: a client that goes away does not stop the indexing.
    failure = await asyncio.shield(indexing)
    if failure is not None:
        # Nothing half-made is left behind for a client that waited for the outcome.
        await documents.delete_document(user.id, document.id)
        raise failure
    return DocumentOut.of(await documents.get_document(user.id, document.id))


@router.get("/documents", response_model=list[DocumentOut])
async def list_documents(
    user: CurrentUser, documents: DocumentsDep, page: PageDep
) -> list[DocumentOut]:
    rows = await documents.list_documents(user.id, limit=page.limit, offset=page.offset)
    return [DocumentOut.of(row) for row in rows]


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(document_id: str, user: CurrentUser, documents: DocumentsDep) -> DocumentOut:
    return DocumentOut.of(await documents.get_document(user.id, document_id))


@router.delete("/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(document_id: str, user: CurrentUser, documents: DocumentsDep) -> Response:
    """Removes the document, its chunks and vectors, and the stored original."""
    await documents.delete_document(user.id, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/documents/{document_id}/file", response_class=StreamingResponse)
async def download_document(
    document_id: str,
    user: CurrentUser,
    documents: DocumentsDep,
    inline: Annotated[bool, Query(description="Show in the browser (PDF, text)")] = False,
) -> StreamingResponse:
    document, pieces = await documents.open_original(user.id, document_id)
    try:
        first = await anext(pieces)
    except BlobNotFound:
        raise NotFound("The document's file is missing") from None
    except StopAsyncIteration:
        first = b""
    disposition = "inline" if inline and document.kind != "docx" else "attachment"
    return StreamingResponse(
        _prepend(first, pieces),
        media_type=MEDIA_TYPES.get(document.kind, "application/octet-stream"),
        headers={
            "Content-Disposition": content_disposition(disposition, document.filename),
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, no-store",
        },
    )


def content_disposition(disposition: str, filename: str) -> str:
    """RFC 6266: an ASCII fallback and the exact name as RFC 5987 ``filename*``."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for piece in rest:
        yield piece
