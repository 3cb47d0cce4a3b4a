"""No upload can exhaust the server: parsers run in worker processes capped in memory and time,
an overrun is a clear 422 that stores nothing (the worker is replaced, the next upload works),
and a user whose uploads keep being refused that way gets 429 for a while."""

from __future__ import annotations

import logging
import os
import random
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from omnichat.documents import service as document_service
from omnichat.documents.extraction import DocumentTooComplex, Extractor, UnreadableDocument
from omnichat.documents.extraction.sandbox import SandboxPool
from omnichat.errors import ServiceUnavailable
from tests import sandbox_jobs
from tests.conftest import TestUser, make_settings, register_user
from tests.docs_factory import make_heavy_docx, make_pdf, make_shared_stream_pdf
from tests.test_documents_lifecycle import started

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    sandbox = SandboxPool("test", workers=2, memory_bytes=384 * MIB)
    yield sandbox
    sandbox.close()


async def test_a_job_that_needs_too_much_memory_is_refused_and_the_worker_replaced(
    pool: SandboxPool,
) -> None:
    with pytest.raises(DocumentTooComplex, match="384 MiB"):
        await pool.run("u1", sandbox_jobs.allocate, 1024, timeout_s=60)
    assert await pool.run("u1", sandbox_jobs.allocate, 16, timeout_s=60) == 16 * MIB


async def test_workers_that_cannot_start_are_a_503_and_a_new_pool() -> None:
    sandbox = SandboxPool("broken", workers=1, memory_bytes=384 * MIB)
    try:
        with pytest.raises(ServiceUnavailable, match="could not start its worker processes"):
            await sandbox.run("u1", sandbox_jobs.echo, sandbox_jobs.Unloadable(), timeout_s=60)
        assert await sandbox.run("u1", sandbox_jobs.echo, "next", timeout_s=60) == "next"
    finally:
        sandbox.close()


async def test_a_worker_killed_while_idle_costs_no_upload_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Noticed by the time the next job runs (which still succeeds): a warning naming the pool,
    the worker and the signal."""
    caplog.set_level(logging.WARNING, logger="omnichat.documents.sandbox")
    sandbox = SandboxPool("killed", workers=1, memory_bytes=384 * MIB)
    try:
        worker = await sandbox.run("u1", sandbox_jobs.pid, timeout_s=60)
        os.kill(worker, signal.SIGKILL)  # the OOM killer's pick, or an operator's
        for n in range(3):
            assert await sandbox.run("u1", sandbox_jobs.echo, f"after {n}", timeout_s=60) == (
                f"after {n}"
            )
    finally:
        sandbox.close()
    deaths = [(r.levelno, r.getMessage()) for r in caplog.records if "idle" in r.getMessage()]
    assert deaths == [
        (logging.WARNING, f"killed worker (pid {worker}) died while idle: killed by SIGKILL")
    ]


async def test_a_worker_killed_mid_job_from_outside_is_tried_once_more(
    pool: SandboxPool, tmp_path: Path
) -> None:
    """SIGKILL mid-job (the OOM killer's pick, an operator's kill) says nothing about the file:
    the job is tried once in a fresh worker, and only a second kill makes it too complex."""
    tries = tmp_path / "killed-once"
    job = sandbox_jobs.die_by_signal
    assert await pool.run("u1", job, signal.SIGKILL, str(tries), 1, timeout_s=60) == "survived"
    assert tries.read_text() == "2"
    tries = tmp_path / "killed-always"
    with pytest.raises(DocumentTooComplex, match="killed twice"):
        await pool.run("u1", job, signal.SIGKILL, str(tries), 9, timeout_s=60)
    assert tries.read_text() == "2"


async def test_a_parser_that_crashes_is_too_complex_at_once(
    pool: SandboxPool, tmp_path: Path
) -> None:
    tries = tmp_path / "crashed"
    with pytest.raises(DocumentTooComplex, match="crashed"):
        await pool.run(
            "u1", sandbox_jobs.die_by_signal, signal.SIGSEGV, str(tries), 9, timeout_s=60
        )
    assert tries.read_text() == "1"  # not tried again: the file made it crash


async def test_a_parser_error_that_cannot_travel_is_a_clear_422(pool: SandboxPool) -> None:
    with pytest.raises(UnreadableDocument, match="its reader failed"):
        await pool.run("u1", sandbox_jobs.raise_unpicklable, timeout_s=60)
    assert await pool.run("u1", sandbox_jobs.echo, "still fine", timeout_s=60) == "still fine"


async def test_a_job_past_its_time_is_killed_and_the_worker_replaced(pool: SandboxPool) -> None:
    with pytest.raises(DocumentTooComplex, match="took longer than 1 s"):
        await pool.run("u1", sandbox_jobs.spin, 60, timeout_s=1)
    assert await pool.run("u1", sandbox_jobs.echo, "next", timeout_s=60) == "next"


async def test_a_worker_left_holding_memory_retires_before_its_next_job() -> None:
    sandbox = SandboxPool("retire", workers=1, memory_bytes=1536 * MIB)
    try:
        small = await sandbox.run("u1", sandbox_jobs.hold, 1, timeout_s=60)
        assert await sandbox.run("u1", sandbox_jobs.pid, timeout_s=60) == small  # kept
        large = await sandbox.run("u1", sandbox_jobs.hold, 900, timeout_s=60)
        assert large == small
        # It ended that job spanning most of its cap: the next job runs in a new worker.
        assert await sandbox.run("u1", sandbox_jobs.pid, timeout_s=60) != large
    finally:
        sandbox.close()


async def test_running_out_of_memory_in_a_used_worker_is_tried_once_in_a_fresh_one() -> None:
    sandbox = SandboxPool("fresh", workers=1, memory_bytes=384 * MIB)
    try:
        used = await sandbox.run("u1", sandbox_jobs.pid, timeout_s=60)
        fresh = await sandbox.run("u1", sandbox_jobs.out_of_memory_unless_first_job, timeout_s=60)
        assert fresh != used
        # In a fresh worker it is the file's own doing: too complex, not tried again.
        with pytest.raises(DocumentTooComplex, match="384 MiB"):
            await sandbox.run("u1", sandbox_jobs.allocate, 1024, timeout_s=60)
    finally:
        sandbox.close()


async def test_a_parser_short_of_memory_is_too_complex_not_corrupt() -> None:
    """libxml2 reports a failed allocation as a syntax error; a parser turns that into "corrupt
    file". It is a memory overrun, said as one."""
    sandbox = SandboxPool("lxml", workers=1, memory_bytes=1024 * MIB)
    try:
        with pytest.raises(DocumentTooComplex, match="memory"):
            await sandbox.run("u1", sandbox_jobs.parse_xml_short_of_memory, timeout_s=60)
        assert await sandbox.run("u1", sandbox_jobs.echo, "next", timeout_s=60) == "next"
    finally:
        sandbox.close()


@pytest.fixture
async def strict(
    app: FastAPI, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = make_settings(
        database_url,
        tmp_path,
        parse_deadline_s=2.0,
        parse_deadline_per_page_s=0.004,
        parser_memory_mb=256,
        failed_upload_limit="2/10 minutes",
    )
    async for pair in started(settings):
        yield pair


async def _upload(
    client: httpx.AsyncClient, user: TestUser, name: str, data: bytes
) -> httpx.Response:
    return await client.post(
        "/upload/document",
        files={"file": (name, data, "application/octet-stream")},
        headers=user.headers,
    )


async def test_costly_files_are_refused_and_repeating_them_is_not_free(
    strict: tuple[FastAPI, httpx.AsyncClient], tmp_path: Path
) -> None:
    _, client = strict
    attacker, bystander = await register_user(client, "bomb"), await register_user(client, "ok")
    heavy = tmp_path / "heavy.docx"
    make_heavy_docx(heavy)
    for name, data in (
        ("shared.pdf", make_shared_stream_pdf()),
        ("heavy.docx", heavy.read_bytes()),
    ):
        r = await _upload(client, attacker, name, data)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith("The document is too complex to index")
    assert (await client.get("/documents", headers=attacker.headers)).json() == []
    # Two refusals of that kind in the window: the attacker's next upload is a 429 ...
    r = await _upload(client, attacker, "fine.pdf", make_pdf(["A fine page."]))
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) > 0
    # ... while the workers were replaced and everyone else goes on.
    r = await _upload(client, bystander, "fine.pdf", make_pdf(["A fine page."]))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"


async def test_a_parser_stuck_in_c_code_is_killed_at_twice_the_deadline(
    strict: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    """libxml2's HTML parser spends time quadratic in a tag's attributes without checking any
    deadline: the worker is killed at twice the 2 s deadline, not after the PDF's hard limit."""
    _, client = strict
    user = await register_user(client, "attrs")
    attributes = " ".join(f'a{n}="x"' for n in range(100_000))
    page = f"<!DOCTYPE html><html><body><div {attributes}>Hello</div></body></html>"
    r = await _upload(client, user, "attrs.html", page.encode())
    assert r.status_code == 422, r.text
    assert (
        r.json()["detail"]
        == "The document is too complex to index: it took longer than 4 s to read"
    )
    assert (await client.get("/documents", headers=user.headers)).json() == []
    r = await _upload(client, user, "fine.html", b"<!DOCTYPE html><p>A fine page.</p>")
    assert r.status_code == 200, r.text


async def test_a_document_over_the_chunk_limit_is_a_413_that_stores_nothing(
    app: FastAPI, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url, tmp_path, max_chunks_per_document=3, chunk_overlap_tokens=0
    )
    async for _, client in started(settings):
        user = await register_user(client, "chunks")
        paragraph = "The harbour authority recorded tides, cargo and weather once more. " * 15
        three = "\n\n".join([paragraph] * 3).encode()
        r = await _upload(client, user, "three.txt", three)
        assert r.status_code == 200, r.text
        assert r.json()["chunks"] == 3
        r = await _upload(client, user, "four.txt", "\n\n".join([paragraph] * 4).encode())
        assert r.status_code == 413, r.text
        assert r.json()["detail"] == (
            "The document makes more than 3 chunks of text to index; "
            "that is the most one document may have"
        )
        names = [
            d["filename"] for d in (await client.get("/documents", headers=user.headers)).json()
        ]
        assert names == ["three.txt"]


async def test_slow_refusals_of_any_kind_count_toward_the_limit(
    strict: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal that kept a parser busy (here: any, with the threshold at 0 s) counts like a
    "too complex" one: a file read for a minute to find no text cannot be sent again and again."""
    monkeypatch.setattr(document_service, "EXPENSIVE_REFUSAL_S", 0.0)
    _, client = strict
    user = await register_user(client, "slow-refusals")
    for _ in range(2):
        r = await _upload(client, user, "blank.txt", b"   \n\n   ")
        assert r.status_code == 422, r.text
    r = await _upload(client, user, "fine.txt", b"A fine note.")
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) > 0


async def test_splitting_text_runs_in_a_worker_with_a_time_limit(
    app: FastAPI, database_url: str, tmp_path: Path
) -> None:
    """Chunking (semchunk, pure Python: in the server it held the GIL and its peak memory for
    a minute on a large spreadsheet) runs in a capped worker: past its time the document is
    refused as too complex, nothing is stored, and the next upload is chunked as before."""
    settings = make_settings(database_url, tmp_path, chunk_timeout_s=1.0)
    async for _, client in started(settings):
        user = await register_user(client, "chunk-time")
        sentence = "The harbour authority recorded tides, cargo and weather once more. "
        words = random.Random(7).choices(sentence.split(), k=600_000)
        # ~4 MB, every paragraph different (the chunker caches the token counts of repeats).
        long_text = "\n\n".join(
            " ".join(words[start : start + 60]) for start in range(0, len(words), 60)
        ).encode()
        r = await _upload(client, user, "long.txt", long_text)
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == (
            "The document is too complex to index: it took longer than 1 s to read"
        )
        assert (await client.get("/documents", headers=user.headers)).json() == []
        r = await _upload(client, user, "short.txt", (sentence * 40).encode())
        assert r.status_code == 200, r.text
        assert r.json()["chunks"] >= 2


async def test_parser_workers_do_not_load_the_chunker_or_the_embedder(tmp_path: Path) -> None:
    """RLIMIT_AS counts address space: a tokenizer library loaded in a parser worker took the
    room a large spreadsheet needed (a 15 MB CSV became 'needs more than 512 MiB' instead of
    'more than 20,000,000 characters'). Each pool loads what its own jobs need."""
    extractor = Extractor(make_settings("sqlite+aiosqlite://", tmp_path))
    heavy = ["tokenizers", "semchunk", "onnxruntime", "torch", "rapidocr_onnxruntime"]
    try:
        assert await extractor._parsers.run("u1", sandbox_jobs.loaded, heavy, timeout_s=60) == []
        in_chunker = await extractor._chunkers.run("u1", sandbox_jobs.loaded, heavy, timeout_s=60)
        assert in_chunker == ["tokenizers", "semchunk"]
    finally:
        extractor.close()
