"""What one large upload costs the server process itself, and everyone else meanwhile.

Starts ``omnichat serve`` (SQLite, the local embedder) as a subprocess, then one user uploads a
large CSV (``--rows`` rows of six fields) with the chunk cap at ``--max-chunks``, so that it
ends in a 413 once the chunker has made that many chunks (all splitting, no embedding), while
another user uploads (and deletes) a small note every ``--every-s`` seconds. Reported: the big
upload's status and time; the serving process's own CPU seconds and RSS growth (its worker
processes excluded: that is the point); the other user's upload times (p50, max).

    .venv/bin/python -m benchmarks.upload_cost [--rows 120000 --max-chunks 5000] [--server-src PATH]

``--server-src`` runs the server from another checkout's ``src`` (an A/B in one sitting).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psutil

from benchmarks.stream_bench import PASSWORD, free_port, process

ROOT_ENV_PREFIX = "OMNICHAT_"


def big_csv(rows: int) -> bytes:
    lines = ["id,city,product,quantity,price,note"]
    cities = ["Lyon", "Oslo", "Porto", "Graz", "Turku", "Split", "Ghent"]
    for n in range(rows):
        city = cities[n % len(cities)]
        lines.append(f"{n},{city},item-{n * 7919 % 100_003},{n % 97},{n % 1013}.{n % 100},r{n}")
    return ("\n".join(lines) + "\n").encode()


async def login(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    email = f"{name}-{os.getpid()}@example.com"
    await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    response = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, data: bytes
) -> httpx.Response:
    files = {"file": (name, data, "text/plain")}
    return await client.post("/upload/document", files=files, headers=headers, timeout=600)


async def measure(base: str, server: psutil.Process, rows: int, every_s: float) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        heavy, other = await login(client, "heavy"), await login(client, "other")
        # Warm: the first upload starts the worker pools and the embedder.
        warm = await upload(client, other, "warm.txt", b"A first note about the harbour.")
        assert warm.status_code == 200, warm.text
        rss_before = server.memory_info().rss
        cpu_before = sum(server.cpu_times()[:2])
        peak = rss_before
        other_times: list[float] = []
        data = big_csv(rows)

        async def big() -> tuple[int, float]:
            started = time.perf_counter()
            response = await upload(client, heavy, "big.csv", data)
            return response.status_code, time.perf_counter() - started

        task = asyncio.create_task(big())
        note = 0
        while not task.done():
            started = time.perf_counter()
            response = await upload(client, other, f"note{note}.txt", f"Note {note}.".encode())
            assert response.status_code == 200, response.text
            other_times.append(time.perf_counter() - started)
            # Deleted again: a user may keep only so many documents.
            await client.delete(f"/documents/{response.json()['id']}", headers=other)
            note += 1
            peak = max(peak, server.memory_info().rss)
            await asyncio.sleep(every_s)
        status, seconds = await task
        return {
            "status": status,
            "big_s": seconds,
            "server_cpu_s": sum(server.cpu_times()[:2]) - cpu_before,
            "rss_growth_mb": (peak - rss_before) / 2**20,
            "rss_after_mb": server.memory_info().rss / 2**20,
            "other_p50_s": statistics.median(other_times),
            "other_max_s": max(other_times),
            "other_count": len(other_times),
            "csv_mb": len(data) / 2**20,
        }


@contextmanager
def local_server(server_src: str | None, **settings: str) -> Iterator[tuple[str, psutil.Process]]:
    """``omnichat serve`` (SQLite, the local embedder, a fresh data dir, uploads up to 64 MiB,
    no access log) with the extra ``OMNICHAT_`` ``settings``, from ``server_src`` if given:
    its base URL and process."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith(ROOT_ENV_PREFIX)}
        env.update(
            OMNICHAT_DATA_DIR=data_dir,
            OMNICHAT_ACCESS_LOG="false",
            OMNICHAT_LOG_LEVEL="WARNING",
            OMNICHAT_MAX_UPLOAD_BYTES=str(64 * 2**20),
            **settings,
        )
        if server_src:
            env["PYTHONPATH"] = server_src
        args = [sys.executable, "-m", "omnichat", "serve", "--port", str(port)]
        with process(args, env, f"http://127.0.0.1:{port}/healthz") as server:
            yield f"http://127.0.0.1:{port}", server


def report(server_src: str | None, result: dict[str, float]) -> None:
    print(f"server src: {server_src or 'this checkout'}")
    for name, value in result.items():
        print(f"  {name}: {value:.2f}" if isinstance(value, float) else f"  {name}: {value}")


async def main(rows: int, every_s: float, server_src: str | None, max_chunks: int) -> None:
    with local_server(server_src, OMNICHAT_MAX_CHUNKS_PER_DOCUMENT=str(max_chunks)) as (
        base,
        server,
    ):
        result = await measure(base, server, rows, every_s)
    report(server_src, result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=120_000)
    parser.add_argument("--every-s", type=float, default=0.5)
    parser.add_argument("--server-src", default=None)
    parser.add_argument("--max-chunks", type=int, default=5000)
    options = parser.parse_args()
    asyncio.run(main(options.rows, options.every_s, options.server_src, options.max_chunks))
