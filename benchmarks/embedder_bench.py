"""The local embedders side by side: chunks/s on the same chunks, and the server's RSS.

Speed: the same chunks (the pipeline's ``Chunker`` over SciFact's abstracts, or over the
docstring set when SciFact is absent) embedded by each local embedder in turn, one warm-up batch
each, then ``ROUNDS`` alternating rounds (torch, ONNX fp32, ONNX int8, torch, ...) so that a
noisy neighbour slows every embedder alike; the median round is reported with the ratio to torch
in the same run.

Memory: ``omnichat serve`` started as a child process with each embedder (a fresh data dir, the
model cache already warm), its ``VmRSS`` once ready and idle, then after one user's first upload
(a 20-page PDF) has been indexed, and whether torch ended up imported (read from the process's
``/proc/<pid>/maps``).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from omnichat.rag.chunking import Chunker
from omnichat.rag.embedders.base import Embedder
from omnichat.rag.embedders.factory import build_embedder
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage
from omnichat.settings import Settings

ROUNDS = 3
SPECS = ("local-torch", "local:fp32", "local:int8")


@dataclass
class SpeedRow:
    embedder: str
    chunks: int
    rounds_s: list[float]

    @property
    def rate(self) -> float:
        return self.chunks / statistics.median(self.rounds_s)


@dataclass
class MemoryRow:
    embedder: str
    idle_mb: float
    after_upload_mb: float
    torch_loaded: bool


def chunk_texts(texts: list[str], settings: Settings) -> list[str]:
    chunker = Chunker.from_settings(settings)
    chunks: list[str] = []
    for body in texts:
        document = ExtractedDocument(kind=DocumentKind.TEXT, pages=[ExtractedPage(1, body)])
        chunks.extend(draft.text for draft in chunker.chunk(document))
    return chunks


async def bench_speed(folder: Path, texts: list[str], specs: tuple[str, ...]) -> list[SpeedRow]:
    base = Settings(data_dir=folder, model_cache_dir=os.environ.get("OMNICHAT_MODEL_CACHE_DIR"))
    chunks = chunk_texts(texts, base)
    embedders: dict[str, Embedder] = {}
    rows = {spec: SpeedRow(spec, len(chunks), []) for spec in specs}
    try:
        for spec in specs:
            embedder = build_embedder(base.model_copy(update={"embedder": spec}))
            await embedder.warm_up()  # type: ignore[attr-defined]
            await embedder.embed_documents(chunks[:32])
            embedders[spec] = embedder
        for _ in range(ROUNDS):
            for spec, embedder in embedders.items():
                started = time.perf_counter()
                await embedder.embed_documents(chunks)
                rows[spec].rounds_s.append(time.perf_counter() - started)
    finally:
        for embedder in embedders.values():
            await embedder.aclose()  # type: ignore[attr-defined]
    return list(rows.values())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _torch_loaded(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def _settle_rss(pid: int, seconds: float = 3.0) -> float:
    time.sleep(seconds)
    return _rss_mb(pid)


def measure_server_memory(folder: Path, spec: str, pdf: bytes) -> MemoryRow:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OMNICHAT_")},
        "OMNICHAT_DATA_DIR": str(folder),
        "OMNICHAT_EMBEDDER": spec,
        "OMNICHAT_ACCESS_LOG": "false",
    }
    if "OMNICHAT_MODEL_CACHE_DIR" in os.environ:
        env["OMNICHAT_MODEL_CACHE_DIR"] = os.environ["OMNICHAT_MODEL_CACHE_DIR"]
    command = [sys.executable, "-m", "omnichat", "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the server with {spec} did not start")
                time.sleep(0.2)
            idle = _settle_rss(process.pid)
            password = "benchmark password 1234"
            client.post(
                "/users/",
                json={"username": "rss", "email": "rss@bench.example", "password": password},
            ).raise_for_status()
            token = client.post(
                "/token", data={"username": "rss@bench.example", "password": password}
            ).json()["access_token"]
            response = client.post(
                "/upload/document",
                files={"file": ("first.pdf", pdf, "application/pdf")},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.json().get("status") != "ready":
                raise RuntimeError(f"upload with {spec}: {response.text}")
            after = _settle_rss(process.pid)
            return MemoryRow(spec, idle, after, _torch_loaded(process.pid))
    finally:
        process.terminate()
        process.wait(timeout=60)


def bench_memory(specs: tuple[str, ...], pdf: bytes) -> list[MemoryRow]:
    rows = []
    for spec in specs:
        with tempfile.TemporaryDirectory(prefix="rss-bench-") as tmp:
            rows.append(measure_server_memory(Path(tmp), spec, pdf))
    return rows


def print_embedders(speed: list[SpeedRow], memory: list[MemoryRow]) -> None:
    if speed:
        torch_rate = next((row.rate for row in speed if row.embedder == "local-torch"), None)
        print(
            f"\n## Local embedders: {speed[0].chunks} chunks, median of {ROUNDS} alternating "
            "rounds\n"
        )
        print("| embedder | chunks/s | vs torch | rounds (s) |")
        print("|---|---:|---:|---|")
        for row in speed:
            ratio = f"{row.rate / torch_rate:.2f}x" if torch_rate else "-"
            rounds = ", ".join(f"{value:.1f}" for value in row.rounds_s)
            print(f"| `{row.embedder}` | {row.rate:.1f} | {ratio} | {rounds} |")
    if memory:
        print("\n## Server RSS (`omnichat serve`, one worker): idle, then after a first upload\n")
        print("| embedder | idle MB | after first upload MB | torch loaded |")
        print("|---|---:|---:|---|")
        for mem in memory:
            print(
                f"| `{mem.embedder}` | {mem.idle_mb:.0f} | {mem.after_upload_mb:.0f} | "
                f"{'yes' if mem.torch_loaded else 'no'} |"
            )
