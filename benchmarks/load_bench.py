"""Load: many concurrent SSE streams, a CRUD mix at a fixed offered rate, and an optional soak,
each beside a baseline measured in the same run.

One run starts the fake OpenAI-format provider and ``omnichat serve`` (one worker, SQLite) as
subprocesses (see ``stream_bench``), then:

1. streams: ``--streams`` (500) concurrent ``POST /chat/stream``, all open at once, against the
   same number straight to the fake provider; errors, TTFT p50/p99, events/s and the server's
   RSS (before, peak during, after);
2. CRUD mix at ``--rate`` requests/s for ``--seconds`` (open loop: requests are sent on
   schedule whether or not earlier ones have answered): 5% ``POST /auth/login``, 50%
   ``GET /sessions``, 45% ``POST /api/chats`` (a message); against ``GET /healthz`` at the same
   offered rate; p50/p99 per operation and failures;
3. ``--soak SECONDS``: streams (c=50) and the CRUD mix at a quarter of the rate, together, for
   that long, the server's RSS sampled every 10 s, with the least-squares slope over the second
   half (a leak shows as a steady positive slope).

    .venv/bin/python -m benchmarks.load_bench [--streams 500 --rate 200 --seconds 20 --soak 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil

from benchmarks.stream_bench import (
    PASSWORD,
    free_port,
    p50_p99,
    prepare_users,
    process,
    server_env,
    sse_request,
)

HOST = "127.0.0.1"
MIB = 1024 * 1024


async def http(
    port: int, method: str, path: str, headers: dict[str, str], body: object = None
) -> int:
    """One request on its own connection; returns the status code."""
    payload = json.dumps(body).encode() if body is not None else b""
    reader, writer = await asyncio.open_connection(HOST, port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    await writer.drain()
    status_line = await reader.readline()
    await reader.read()
    writer.close()
    return int(status_line.split()[1])


@dataclass
class RssSampler:
    process: psutil.Process
    interval_s: float
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)

    async def run(self) -> None:
        started = time.monotonic()
        while True:
            self.samples.append((time.monotonic() - started, self.rss_mib()))
            await asyncio.sleep(self.interval_s)

    def rss_mib(self) -> float:
        return float(self.process.memory_info().rss) / MIB


@dataclass
class StreamResult:
    label: str
    ttft_ms: list[float]
    events: int
    errors: int
    wall_s: float
    rss: tuple[float, float, float] | None = None  # before, peak, after (MiB)

    def row(self) -> str:
        p50, p99 = p50_p99(self.ttft_ms)
        rss = "" if self.rss is None else " / ".join(f"{value:.0f}" for value in self.rss)
        return (
            f"| {self.label} | {len(self.ttft_ms) + self.errors} | {self.errors} | {p50:.0f} | "
            f"{p99:.0f} | {self.events / self.wall_s:,.0f} | {rss or 'n/a'} |"
        )


async def streams_at_once(
    port: int, path: str, requests: list[tuple[bytes, dict[str, str]]], label: str
) -> StreamResult:
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(sse_request(HOST, port, path, body, headers) for body, headers in requests),
        return_exceptions=True,
    )
    wall = time.perf_counter() - started
    ok = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
    return StreamResult(
        label,
        [ttft for ttft, _ in ok],
        sum(events for _, events in ok),
        len(outcomes) - len(ok),
        wall,
    )


@dataclass
class Operation:
    name: str
    call: Callable[[], Awaitable[int]]
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0


async def offered_rate(
    operations: list[tuple[Operation, float]], rate: float, seconds: float
) -> None:
    """Sends ``rate`` requests/s for ``seconds``, each picked by weight, on schedule."""
    rng = random.Random(7)
    picks = [operation for operation, _ in operations]
    weights = [weight for _, weight in operations]
    pending: set[asyncio.Task[None]] = set()

    async def one(operation: Operation) -> None:
        started = time.perf_counter()
        try:
            status = await operation.call()
        except OSError:
            status = 0
        operation.latencies_ms.append((time.perf_counter() - started) * 1000)
        operation.failures += not 200 <= status < 300

    started = time.monotonic()
    for index in range(int(rate * seconds)):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(rng.choices(picks, weights)[0]))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)


User = tuple[dict[str, str], str, str]  # auth headers, session id, email


def crud_operations(port: int, users: list[User]) -> list[tuple[Operation, float]]:
    rng = random.Random(11)

    def pick() -> User:
        return users[rng.randrange(len(users))]

    async def login() -> int:
        _, _, email = pick()
        return await http(port, "POST", "/auth/login", {}, {"email": email, "password": PASSWORD})

    async def list_sessions() -> int:
        headers, _, _ = pick()
        return await http(port, "GET", "/sessions?limit=50", headers)  # a sidebar page

    async def add_message() -> int:
        headers, session_id, _ = pick()
        body = {"session": session_id, "role": "user", "message": "load test message"}
        return await http(port, "POST", "/api/chats", headers, body)

    return [
        (Operation("POST /auth/login", login), 0.05),
        (Operation("GET /sessions?limit=50", list_sessions), 0.50),
        (Operation("POST /api/chats (add a message)", add_message), 0.45),
    ]


def print_operations(title: str, operations: list[Operation]) -> None:
    print(
        f"\n{title}\n\n| operation | requests | failures | p50 ms | p99 ms |\n|---|---|---|---|---|"
    )
    for operation in operations:
        p50, p99 = p50_p99(operation.latencies_ms)
        print(
            f"| {operation.name} | {len(operation.latencies_ms)} | {operation.failures} | "
            f"{p50:.1f} | {p99:.1f} |"
        )


def slope_mib_per_min(samples: list[tuple[float, float]]) -> float:
    second_half = samples[len(samples) // 2 :]
    if len(second_half) < 2:
        return float("nan")
    xs = [t / 60 for t, _ in second_half]
    ys = [rss for _, rss in second_half]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


async def main(args: argparse.Namespace) -> None:
    fake_port, app_port = free_port(), free_port()
    python = sys.executable
    fake_args = [python, "-m", "tests.fakes", "--port", str(fake_port), "--tokens", "50"]
    fake_args += ["--interval-ms", "10"]
    with tempfile.TemporaryDirectory() as data_dir:
        env = server_env(data_dir, fake_port, OMNICHAT_FAILED_LOGIN_LIMIT="1000000/minute")
        app_args = [python, "-m", "omnichat", "serve", "--port", str(app_port)]
        with (
            process(fake_args, env, f"http://{HOST}:{fake_port}/v1/models"),
            process(app_args, env, f"http://{HOST}:{app_port}/healthz") as app,
        ):
            prepared = await prepare_users(f"http://{HOST}:{app_port}", 100)
            users = [
                (headers, session_id, f"bench{index}-{os.getpid()}@example.com")
                for index, (headers, session_id) in enumerate(prepared)
            ]
            direct = (
                json.dumps(
                    {
                        "model": "gpt-5.4-mini",
                        "stream": True,
                        "messages": [{"role": "user", "content": "Tell me a joke"}],
                    }
                ).encode(),
                {"Authorization": "Bearer sk-bench"},
            )

            def chat_request(index: int) -> tuple[bytes, dict[str, str]]:
                headers, session_id, _ = users[index % len(users)]
                body = {"session_id": session_id, "prompt": "Tell me a joke", "provider": "openai"}
                if args.new_sessions:
                    del body["session_id"]  # each stream starts a session: no history growth
                return json.dumps(body).encode(), headers

            print(f"{os.cpu_count()} cores; fake provider: 50 tokens at 10 ms")
            results = [
                await streams_at_once(
                    fake_port, "/v1/chat/completions", [direct] * args.streams, "direct to fake"
                )
            ]
            sampler = RssSampler(app, 0.2)
            before = sampler.rss_mib()
            sampling = asyncio.create_task(sampler.run())
            through = await streams_at_once(
                app_port,
                "/chat/stream",
                [chat_request(index) for index in range(args.streams)],
                "through OmniChat /chat/stream",
            )
            sampling.cancel()
            await asyncio.sleep(2)
            through.rss = (before, max(rss for _, rss in sampler.samples), sampler.rss_mib())
            results.append(through)
            print(
                f"\n## {args.streams} concurrent SSE streams\n\n| path | streams | errors | "
                "TTFT p50 ms | TTFT p99 ms | events/s | server RSS before / peak / after MiB |"
                "\n|---|---|---|---|---|---|---|"
            )
            for result in results:
                print(result.row())

            baseline = Operation("GET /healthz", lambda: http(app_port, "GET", "/healthz", {}))
            await offered_rate([(baseline, 1.0)], args.rate, args.seconds)
            operations = crud_operations(app_port, users)
            await offered_rate(operations, args.rate, args.seconds)
            print_operations(
                f"## CRUD mix at {args.rate:.0f} requests/s offered for {args.seconds:.0f} s "
                f"(baseline first, same rate)",
                [baseline, *[operation for operation, _ in operations]],
            )

            if args.soak:
                await soak(args, app, app_port, chat_request, users)


async def soak(
    args: argparse.Namespace,
    app: psutil.Process,
    port: int,
    chat_request: Callable[[int], tuple[bytes, dict[str, str]]],
    users: list[User],
) -> None:
    sampler = RssSampler(app, 10.0)
    sampling = asyncio.create_task(sampler.run())
    deadline = time.monotonic() + args.soak
    counts = {"streams": 0, "errors": 0}

    async def streamer(worker: int) -> None:
        index = worker
        while time.monotonic() < deadline:
            body, headers = chat_request(index)
            try:
                await sse_request(HOST, port, "/chat/stream", body, headers)
                counts["streams"] += 1
            except (OSError, RuntimeError):
                counts["errors"] += 1
            index += 50

    operations = crud_operations(port, users)
    await asyncio.gather(
        *(streamer(worker) for worker in range(50)),
        offered_rate(operations, args.rate / 4, args.soak),
    )
    sampling.cancel()
    print(
        f"\n## Soak: {args.soak:.0f} s of 50 concurrent streams plus the CRUD mix at "
        f"{args.rate / 4:.0f} requests/s\n\n{counts['streams']} streams, {counts['errors']} "
        f"stream errors, {sum(o.failures for o, _ in operations)} CRUD failures of "
        f"{sum(len(o.latencies_ms) for o, _ in operations)}"
    )
    print("\n| minute | server RSS MiB |\n|---|---|")
    for seconds, rss in sampler.samples:
        if int(seconds) % 60 < 10:
            print(f"| {seconds / 60:.0f} | {rss:.0f} |")
    print(f"\nRSS slope over the second half: {slope_mib_per_min(sampler.samples):+.2f} MiB/min")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--soak", type=float, default=0.0, help="soak seconds (0: none)")
    parser.add_argument(
        "--new-sessions",
        action="store_true",
        help="every stream starts its own session (by default streams reuse 100 sessions, "
        "whose histories grow through the run)",
    )
    asyncio.run(main(parser.parse_args()))
