"""Streaming throughput and latency: direct to the fake provider vs through OmniChat.

One run starts the fake OpenAI-format provider (N tokens at interval T) and an OmniChat server
(one uvicorn worker, SQLite, the fake as its OpenAI provider) as subprocesses, then drives both
with the same lean SSE client at each concurrency:

- baseline: ``POST /v1/chat/completions`` (stream) straight to the fake provider;
- omnichat, one case per ``--path``: ``seed`` is ``POST /chat/stream`` (seed 001) with auth,
  history, persistence before and after; ``v1`` is ``POST /v1/chat/completions`` with
  ``stream: true`` (same bearer token, nothing stored); ``v1-tools`` is the same with a
  ``tools`` list, the fake started with ``--tool-call`` so that every reply is a streamed tool
  call (it cannot be combined with the other two, whose replies would be tool calls too).

Reported per case: TTFT p50/p99 (request sent to first counted event), delivered events/s over
the wall time, and server CPU per event (the OmniChat process's user+system time divided by the
events it delivered; the fake's for the baseline). An event is one ``data:`` line with a
non-empty text delta; with ``v1-tools``, also one with a ``tool_calls`` delta (a piece of a
tool call: its id and name, or a piece of its arguments).

``--server-src DIR`` puts DIR first on the OmniChat server's ``PYTHONPATH`` (e.g. the ``src``
of a ``git worktree`` of another commit, for an A/B); the ``omnichat`` package the server
imports is printed. The fake provider and this client always run from this checkout.

    .venv/bin/python -m benchmarks.stream_bench [--tokens 50 --interval-ms 10 --requests 300]
        [--path seed --path v1 | --path v1-tools] [--server-src /tmp/worktree/src]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark passphrase 1"
# A non-empty text delta in either format: {"delta": "x"} (seed 001) or "content":"x" (OpenAI).
CONTENT_EVENT = re.compile(rb'"(?:delta|content)": ?"(?!")')
# The same, or a tool-call piece: "tool_calls": [ (not the finish_reason "tool_calls").
CONTENT_OR_TOOL_EVENT = re.compile(rb'"(?:delta|content)": ?"(?!")|"tool_calls": ?\[')
MODEL = "gpt-5.4-mini"
TOOL_NAME = "get_weather"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    }
]
# The local embedder's ONNX export, cached across runs (a new data dir each run would export it
# again at every start-up); both commits of an A/B may share it, as the cache is checksummed.
MODEL_CACHE = Path(tempfile.gettempdir()) / "omnichat-stream-bench-models"
PATHS = {"seed": "/chat/stream", "v1": "/v1/chat/completions", "v1-tools": "/v1/chat/completions"}


def server_env(data_dir: str, fake_port: int, **extra: str) -> dict[str, str]:
    """``omnichat serve``'s environment: the fake as its OpenAI provider, no access log, limits
    out of the way of the load."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("OMNICHAT_")},
        "OMNICHAT_DATA_DIR": data_dir,
        "OMNICHAT_OPENAI_API_KEY": "sk-bench",
        "OMNICHAT_OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
        "OMNICHAT_ACCESS_LOG": "false",
        "OMNICHAT_LOG_LEVEL": "WARNING",
        "OMNICHAT_GENERATION_RATE_LIMIT": "1000000/minute",
        "OMNICHAT_MAX_CONCURRENT_GENERATIONS": "1000",
        # Every benchmark user registers and logs in from one address (ignored by older code).
        "OMNICHAT_LOGIN_ADDRESS_LIMIT": "1000000/minute",
        "OMNICHAT_REGISTER_ADDRESS_LIMIT": "1000000/minute",
        **extra,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(args: list[str], env: dict[str, str], ready_url: str) -> Iterator[psutil.Process]:
    proc = subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(ready_url, timeout=1)
            break
        except httpx.TransportError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                output = proc.stderr.read() if proc.stderr else b""
                raise RuntimeError(f"{args} failed: {output!r}") from exc
            time.sleep(0.1)
    try:
        yield psutil.Process(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Result:
    ttft_ms: list[float]
    # TTFT of the requests after the first ``c``: those all start at once, so their set-up
    # queues behind each other; the later ones arrive one at a time, as streams finish.
    later_ttft_ms: list[float]
    events: int
    wall_s: float
    cpu_s: float
    errors: int

    def row(self, name: str, concurrency: int) -> str:
        p50, p99 = p50_p99(self.ttft_ms)
        later_p50, _ = p50_p99(self.later_ttft_ms)
        rate = self.events / self.wall_s if self.wall_s else 0.0
        cpu_us = self.cpu_s / self.events * 1e6 if self.events else float("nan")
        return (
            f"| {name} | {concurrency} | {p50:.1f} | {p99:.1f} | {later_p50:.1f} | {rate:,.0f} |"
            f" {cpu_us:.0f} | {self.errors} |"
        )


def p50_p99(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def sse_request(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str], event: re.Pattern[bytes]
) -> tuple[float, int]:
    """One streamed POST over a raw socket; returns (TTFT in ms, events received): lines
    matching ``event``."""
    reader, writer = await asyncio.open_connection(host, port)
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    head.extend(f"{k}: {v}" for k, v in headers.items())
    started = time.perf_counter()
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    ttft = -1.0
    events = 0
    status_line = await reader.readline()
    if b" 200 " not in status_line:
        writer.close()
        raise RuntimeError(status_line.decode(errors="replace"))
    async for line in reader:  # chunked framing lines are skipped by the prefix test
        if line.startswith(b"data: ") and event.search(line):
            if ttft < 0:
                ttft = (time.perf_counter() - started) * 1000
            events += 1
        elif line.startswith(b"data: [DONE]"):
            break
    writer.close()
    return ttft, events


def process_cpu(proc: psutil.Process) -> float:
    """User + system seconds of the process and its worker processes, live or ended (an ended
    child that was waited for is in its parent's children_user/children_system; without those
    a child ending mid-case made the difference negative)."""
    total = sum(proc.cpu_times()[:4])
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:4])
    return total


async def wait_idle(proc: psutil.Process, limit_s: float = 300.0) -> float:
    """Waits until the process and its children use under 5% of a core over a second (the
    local embedder's start-up warm-up exports or loads its model: ~20 s of CPU for an export
    into a new cache, which would otherwise run during the first cases); returns the wait."""
    started = time.monotonic()
    before = process_cpu(proc)
    while time.monotonic() - started < limit_s:
        await asyncio.sleep(1.0)
        now = process_cpu(proc)
        if now - before < 0.05:
            break
        before = now
    return time.monotonic() - started


async def run_case(
    host: str,
    port: int,
    path: str,
    bodies: list[bytes],
    headers: list[dict[str, str]],
    concurrency: int,
    server: psutil.Process,
    event: re.Pattern[bytes] = CONTENT_EVENT,
) -> Result:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(bodies)):
        queue.put_nowait(index)
    ttfts: list[float] = []
    later_ttfts: list[float] = []
    totals = {"events": 0, "errors": 0}

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            try:
                ttft, events = await sse_request(
                    host, port, path, bodies[index], headers[index], event
                )
                ttfts.append(ttft)
                if index >= concurrency:
                    later_ttfts.append(ttft)
                totals["events"] += events
            except Exception:
                totals["errors"] += 1

    cpu_before = process_cpu(server)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    cpu = process_cpu(server) - cpu_before
    return Result(ttfts, later_ttfts, totals["events"], wall, cpu, totals["errors"])


async def prepare_users(base: str, count: int) -> list[tuple[dict[str, str], str]]:
    """``count`` users with a session each (a user's concurrency limit is per user)."""
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for index in range(count):
            email = f"bench{index}-{os.getpid()}@example.com"
            await client.post("/auth/register", json={"email": email, "password": PASSWORD})
            token = (
                await client.post("/auth/login", json={"email": email, "password": PASSWORD})
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            session = (
                await client.post("/sessions", json={"title": "bench"}, headers=headers)
            ).json()
            out.append((headers, session["id"]))
    return out


def omnichat_body(path: str, session_id: str) -> bytes:
    if path == "seed":
        return json.dumps(
            {"session_id": session_id, "prompt": "Tell me a joke", "provider": "openai"}
        ).encode()
    return v1_body(tools=path == "v1-tools")


def v1_body(*, tools: bool) -> bytes:
    body: dict[str, object] = {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": "Tell me a joke"}],
    }
    if tools:
        body["messages"] = [{"role": "user", "content": "What is the weather in Paris?"}]
        body["tools"] = TOOLS
    return json.dumps(body).encode()


def imported_from(python: str, env: dict[str, str]) -> str:
    """Where the server's interpreter, with the server's environment, finds ``omnichat``."""
    probe = subprocess.run(
        [python, "-c", "import omnichat; print(omnichat.__file__)"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return probe.stdout.strip()


async def main(
    tokens: int,
    interval_ms: float,
    requests: int,
    workers: int,
    paths: list[str],
    server_src: str | None,
) -> None:
    fake_port, app_port = free_port(), free_port()
    python = sys.executable
    tools = "v1-tools" in paths
    event = CONTENT_OR_TOOL_EVENT if tools else CONTENT_EVENT
    fake_args = [
        python,
        "-m",
        "tests.fakes",
        "--port",
        str(fake_port),
        "--tokens",
        str(tokens),
        "--interval-ms",
        str(interval_ms),
    ]
    if tools:
        fake_args += ["--tool-call", TOOL_NAME]
    with tempfile.TemporaryDirectory() as data_dir:
        fake_env = server_env(data_dir, fake_port)
        env = {**fake_env, "OMNICHAT_MODEL_CACHE_DIR": str(MODEL_CACHE)}
        if server_src is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [server_src, env.get("PYTHONPATH")]))
        print(f"omnichat imported from {imported_from(python, env)}")
        app_args = [python, "-m", "omnichat", "serve", "--port", str(app_port)]
        redis = None
        if workers > 1:
            redis_port = free_port()
            redis = subprocess.Popen(  # noqa: ASYNC220 - set-up, before any measurement
                ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
            env["OMNICHAT_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            app_args += ["--workers", str(workers)]
        with (
            process(fake_args, fake_env, f"http://127.0.0.1:{fake_port}/v1/models") as fake,
            process(app_args, env, f"http://127.0.0.1:{app_port}/healthz") as app,
        ):
            users = await prepare_users(f"http://127.0.0.1:{app_port}", 100)
            waited = await wait_idle(app)
            direct_body = v1_body(tools=tools)
            rows = []
            for concurrency in (1, 100):
                count = min(requests, 20) if concurrency == 1 else requests
                direct = await run_case(
                    "127.0.0.1",
                    fake_port,
                    "/v1/chat/completions",
                    [direct_body] * count,
                    [{"Authorization": "Bearer sk-bench"}] * count,
                    concurrency,
                    fake,
                    event,
                )
                rows.append(
                    direct.row(
                        "direct to fake provider" + (" (tools)" if tools else ""), concurrency
                    )
                )
                for path in paths:
                    bodies, headers = [], []
                    for index in range(count):
                        user_headers, session_id = users[index % len(users)]
                        bodies.append(omnichat_body(path, session_id))
                        headers.append(user_headers)
                    through = await run_case(
                        "127.0.0.1", app_port, PATHS[path], bodies, headers, concurrency, app, event
                    )
                    label = f"through OmniChat {PATHS[path]}" + (" (tools)" if tools else "")
                    if workers > 1:
                        label += f" ({workers} workers + Redis)"
                    rows.append(through.row(label, concurrency))
        if redis is not None:
            redis.terminate()
    print(
        f"fake provider: {tokens} tokens at {interval_ms} ms"
        + (f", every reply a streamed {TOOL_NAME} tool call" if tools else "")
        + f"; {requests} requests at c=100, {min(requests, 20)} at c=1; {os.cpu_count()} cores;"
        f" waited {waited:.0f} s for the server to go idle after start-up"
    )
    print(
        "| path | c | TTFT p50 ms | TTFT p99 ms | TTFT p50 after the first c ms | events/s "
        "| server CPU µs/event | errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1, help="OmniChat workers (>1 adds Redis)")
    parser.add_argument(
        "--path",
        dest="paths",
        action="append",
        choices=sorted(PATHS),
        help="OmniChat path to measure, repeatable (default: seed)",
    )
    parser.add_argument(
        "--server-src",
        metavar="DIR",
        help="put DIR (e.g. <worktree>/src) first on the OmniChat server's PYTHONPATH",
    )
    arguments = parser.parse_args()
    chosen = list(dict.fromkeys(arguments.paths or ["seed"]))
    if "v1-tools" in chosen and len(chosen) > 1:
        parser.error("--path v1-tools runs alone (the fake answers every request with a tool call)")
    asyncio.run(
        main(
            arguments.tokens,
            arguments.interval_ms,
            arguments.requests,
            arguments.workers,
            chosen,
            str(Path(arguments.server_src).resolve()) if arguments.server_src else None,
        )
    )
