"""Server-sent events from a provider's response body, parsed a network read at a time.

The SDKs decode SSE a line at a time in pure Python (a generator per line, a string per field);
here one read's bytes are split on blank lines in one go and only ``data:`` fields are kept:
every event of the read comes back as a list of ``data`` payloads. An event split across reads
waits in the buffer for the rest of it.
"""

from __future__ import annotations

_BLANK_LINE = b"\n\n"


class SSEDataParser:
    """``feed(bytes) -> [data, ...]``: each complete event's ``data`` (several ``data:`` lines
    joined by ``\\n``, as the SSE spec says); events without data (comments, keep-alives) are
    skipped. ``event:``, ``id:`` and ``retry:`` fields are ignored."""

    def __init__(self) -> None:
        self._buffer = b""
        self._carriage_return = False  # the previous read ended inside a possible \r\n

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._carriage_return:
            self._carriage_return = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._carriage_return = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + chunk if self._buffer else chunk
        if _BLANK_LINE not in buffer:
            self._buffer = buffer
            return []
        *events, self._buffer = buffer.split(_BLANK_LINE)
        out: list[bytes] = []
        for event in events:
            if event.startswith(b"data: ") and b"\n" not in event:
                out.append(event[6:])  # the usual shape: one data line
            elif event:
                data = _data_of(event)
                if data is not None:
                    out.append(data)
        return out

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet ended by a blank line."""
        return self._buffer


def _data_of(event: bytes) -> bytes | None:
    lines = [
        line[5:].removeprefix(b" ")
        for line in event.split(b"\n")
        if line.startswith(b"data:") or line == b"data"
    ]
    return b"\n".join(lines) if lines else None
