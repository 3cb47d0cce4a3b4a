"""Seed 003's ``POST /upload/document`` and the documents endpoints around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData

from omnichat.authenticate_first import AuthenticateFirstRoute
from omnichat.deps import CurrentUser, DocumentsDep, PageDep
from omnichat.documents.extraction.errors import ACCEPTED_TYPES
from omnichat.documents.schemas import DocumentOut
from omnichat.errors import BadRequest, NotFound, error_responses

router = APIRouter(tags=["documents"], route_class=AuthenticateFirstRoute)

MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    # The original bytes, in whatever encoding they came (no charset claimed for them).
    "csv": "text/csv",
    # Never text/html: an uploaded page must not render on the API's origin. It is always an
    # attachment (``ATTACHMENT_ONLY``), and typed as text even then.
    "html": "text/plain",
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
}
UPLOAD_FIELDS = frozenset({"file", "session_id"})
# Always downloaded, never shown inline.
ATTACHMENT_ONLY = frozenset({"docx", "pptx", "xlsx", "html"})


@router.post(
    "/upload/document",
    response_model=DocumentOut,
    responses={
        202: {"description": "Accepted (``?background=true``): poll the document"},
        # 400: a malformed multipart body; 404: an unknown session_id; 409, 413: the caller's
        # quota; 413: the file's size or a DOCX, PPTX or XLSX that would unpack too large; 415:
        # not one of ACCEPTED_TYPES; 422: corrupt, encrypted, empty or without text.
        # 429: too many of the caller's uploads were too complex to index lately, or a scan
        # with no other text came after the caller's OCR allowance (OCR_PAGES_PER_HOUR) ran out.
        **error_responses(400, 401, 404, 409, 413, 415, 422, 429, 503),
    },
)
async def upload_document(
    user: CurrentUser,
    documents: DocumentsDep,
    request: Request,
    response: Response,
    file: Annotated[UploadFile, File(description=ACCEPTED_TYPES)],
    # An empty form field is no session (FastAPI reads it as absent), so the schema allows "".
    session_id: Annotated[str | None, Form(max_length=64)] = None,
    background: Annotated[bool, Query(description="Answer 202 at once; poll")] = False,
) -> DocumentOut:
    """Answers when the document is indexed (``ready``), or at once with 202 and status
    ``processing`` with ``?background=true``. One ``file`` per request: a second one, or a
    form field other than ``file`` and ``session_id``, is a 400 naming it (never ignored)."""
    _refuse_unread_fields(await request.form())
    document, indexing = await documents.upload(user.id, file.file, file.filename, session_id)
    if background:
        response.status_code = status.HTTP_202_ACCEPTED
        return DocumentOut.of(document)
    # Waited for, not awaited: a client that goes away does not stop the indexing, which a
    # delete of the document (or of the account) or a shutdown may cancel meanwhile.
    try:
        await asyncio.wait([indexing])
    except asyncio.CancelledError:
        # The server's shutdown grace ended first (only uvicorn cancels a request): the
        # document is stored and its indexing resumes at the next start, so the answer says
        # so (a 503 would have the client upload it again).
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        response.status_code = status.HTTP_202_ACCEPTED
        return DocumentOut.of(document)
    if indexing.cancelled():
        # Deleted meanwhile (404), or the server is stopping: then it resumes at the next start.
        state = await documents.get_document(user.id, document.id)
        response.status_code = status.HTTP_202_ACCEPTED
        return DocumentOut.of(state)
    failure = indexing.result()
    if isinstance(failure, NotFound):  # deleted meanwhile (or its account)
        raise failure
    if failure is not None:
        # Nothing half-made is left behind for a client that waited for the outcome.
        await documents.delete_document(user.id, document.id)
        raise failure
    return DocumentOut.of(await documents.get_document(user.id, document.id))


def _refuse_unread_fields(form: FormData) -> None:
    """The upload reads one ``file`` and at most one ``session_id``; anything else a client
    sent would be dropped silently, so it is refused instead."""
    for name in dict.fromkeys(form.keys()):
        if name not in UPLOAD_FIELDS:
            raise BadRequest(
                f"Unknown form field '{name}': an upload takes 'file' and 'session_id'",
                param=name,
            )
        if len(form.getlist(name)) > 1:
            raise BadRequest(
                f"More than one '{name}' part: upload one document per request", param=name
            )


@router.get("/documents", response_model=list[DocumentOut], responses=error_responses(401, 422))
async def list_documents(
    user: CurrentUser, documents: DocumentsDep, page: PageDep
) -> list[DocumentOut]:
    rows = await documents.list_documents(user.id, limit=page.limit, offset=page.offset)
    return [DocumentOut.of(row) for row in rows]


@router.get(
    "/documents/{document_id}", response_model=DocumentOut, responses=error_responses(401, 404, 422)
)
async def get_document(document_id: str, user: CurrentUser, documents: DocumentsDep) -> DocumentOut:
    return DocumentOut.of(await documents.get_document(user.id, document_id))


@router.delete(
    "/documents/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    # 503: the originals' store does not answer (nothing is deleted).
    responses=error_responses(401, 404, 422, 503),
)
async def delete_document(document_id: str, user: CurrentUser, documents: DocumentsDep) -> Response:
    """Removes the document, its chunks and vectors, and the stored original."""
    await documents.delete_document(user.id, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/documents/{document_id}/file",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The original file, as the type its bytes were recognised as",
            "content": {
                media_type.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
                for media_type in MEDIA_TYPES.values()
            },
        },
        # 410: the document has no original of its own (missing, or lost to an earlier
        # storage fault); it stays searchable.
        **error_responses(401, 404, 410, 422),
    },
)
async def download_document(
    document_id: str,
    user: CurrentUser,
    documents: DocumentsDep,
    inline: Annotated[bool, Query(description="Show in the browser (PDF, text)")] = False,
) -> StreamingResponse:
    document, pieces = await documents.open_original(user.id, document_id)
    try:
        first = await anext(pieces)  # OriginalUnavailable (410) before anything is sent
    except StopAsyncIteration:
        first = b""
    disposition = "inline" if inline and document.kind not in ATTACHMENT_ONLY else "attachment"
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
