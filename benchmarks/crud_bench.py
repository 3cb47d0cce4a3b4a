"""Server CPU per request for simple endpoints: `omnichat serve` (one worker, SQLite) as a
subprocess, driven by a raw-socket client (10 concurrent connections, one request each).

    .venv/bin/python -m benchmarks.crud_bench [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

from benchmarks.stream_bench import free_port, prepare_users, process, process_cpu

CONCURRENCY = 10


async def get(port: int, path: str, headers: dict[str, str], count: int) -> int:
    failures = 0
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"GET {path} HTTP/1.1", "Host: bench", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        response = await reader.read()
        failures += not response.startswith(b"HTTP/1.1 200")
        writer.close()
    return failures


async def main(requests: int) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OMNICHAT_")},
            "OMNICHAT_DATA_DIR": data_dir,
            "OMNICHAT_ACCESS_LOG": "false",
            "OMNICHAT_LOG_LEVEL": "WARNING",
        }
        args = [sys.executable, "-m", "omnichat", "serve", "--port", str(port)]
        with process(args, env, f"http://127.0.0.1:{port}/healthz") as server:
            [(headers, _)] = await prepare_users(f"http://127.0.0.1:{port}", 1)
            cores = os.cpu_count()
            print(f"{requests} requests per endpoint, {CONCURRENCY} concurrent; {cores} cores")
            print("| endpoint | server CPU ms/request | requests/s | failures |")
            print("|---|---|---|---|")
            for path, auth in (("/healthz", {}), ("/users/me/", headers), ("/sessions", headers)):
                cpu, started = process_cpu(server), time.perf_counter()
                per_client = requests // CONCURRENCY
                failures = sum(
                    await asyncio.gather(
                        *(get(port, path, auth, per_client) for _ in range(CONCURRENCY))
                    )
                )
                done = per_client * CONCURRENCY
                print(
                    f"| GET {path} | {(process_cpu(server) - cpu) * 1e3 / done:.2f} |"
                    f" {done / (time.perf_counter() - started):,.0f} | {failures} |"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    asyncio.run(main(parser.parse_args().requests))
