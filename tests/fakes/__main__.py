"""`python -m tests.fakes --port N --tokens 50 --interval-ms 10`: the fake providers, standalone.

Prints `fake providers listening on http://127.0.0.1:N` once bound, then serves until
SIGINT/SIGTERM. Requests are not recorded unless --record is given (a benchmark would
otherwise grow the log without bound). `--tool-call NAME` makes every generation reply a
streamed tool call (see `TOOL_CALL_REPLIES`).
"""

from __future__ import annotations

import argparse

from tests.fakes.behaviours import ToolCalls
from tests.fakes.server import FakeProviderServer

# The server has no default tool-call reply, so --tool-call scripts this many (one behaviour
# object, referenced this many times): enough for any benchmark run. Each is `ToolCalls`: a
# short text in one chunk, then the call (its id and name, then its arguments in two pieces),
# all at once: --tokens and --interval-ms do not apply to it.
TOOL_CALL_REPLIES = 1_000_000
TOOL_CALL_TEXT = "Let me look that up."
TOOL_CALL_ARGUMENTS = '{"city": "Paris", "unit": "celsius"}'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument(
        "--tokens", type=int, default=None, help="tokens per default reply (default: the echo)"
    )
    parser.add_argument("--interval-ms", type=float, default=0.0, help="sleep before each token")
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--record", action="store_true", help="keep a log of every request")
    parser.add_argument(
        "--tool-call",
        metavar="NAME",
        help="every generation reply: a short text, then a call of this function (not paced)",
    )
    args = parser.parse_args(argv)
    server = FakeProviderServer(
        args.host,
        args.port,
        tokens=args.tokens,
        interval_s=args.interval_ms / 1000.0,
        embedding_dim=args.embedding_dim,
        record=args.record,
    )
    if args.tool_call:
        reply = ToolCalls([(args.tool_call, TOOL_CALL_ARGUMENTS)], text=TOOL_CALL_TEXT)
        server.script(*[reply] * TOOL_CALL_REPLIES)

    def ready() -> None:
        print(f"fake providers listening on {server.base_url}", flush=True)

    server.serve_forever(on_ready=ready)


if __name__ == "__main__":
    main()
