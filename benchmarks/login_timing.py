"""Login timing: a wrong password for an existing account vs an unknown email.

Both must cost the same (argon2id verification of a real or a dummy hash), so response timing
does not reveal which emails have accounts. Runs the real app in-process on a temporary SQLite
database; the two cases are interleaved so machine noise hits both alike.

    .venv/bin/python benchmarks/login_timing.py [--rounds 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from omnichat.app import create_app
from omnichat.cli import migrate
from omnichat.settings import Settings

PASSWORD = "correct horse battery staple"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), access_log=False)
        await migrate(settings)
        app = create_app(settings)
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await client.post(
                    "/auth/register", json={"email": "known@example.com", "password": PASSWORD}
                )
                cases = {
                    "existing email, wrong password": "known@example.com",
                    "unknown email": "unknown@example.com",
                }
                timings: dict[str, list[float]] = {name: [] for name in cases}
                for _ in range(rounds):
                    for name, email in cases.items():
                        started = time.perf_counter()
                        r = await client.post(
                            "/auth/login", json={"email": email, "password": "wrong password 1"}
                        )
                        timings[name].append((time.perf_counter() - started) * 1000)
                        assert r.status_code == 401
    print(f"login timing, {rounds} interleaved rounds (ms)")
    print(f"{'case':34} {'p50':>7} {'p95':>7} {'mean':>7}")
    for name, values in timings.items():
        print(
            f"{name:34} {statistics.median(values):7.1f} {_percentile(values, 0.95):7.1f}"
            f" {statistics.fmean(values):7.1f}"
        )
    a, b = (statistics.median(v) for v in timings.values())
    print(f"median difference: {abs(a - b):.1f} ms ({abs(a - b) / max(a, b) * 100:.1f}%)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    asyncio.run(main(parser.parse_args().rounds))
