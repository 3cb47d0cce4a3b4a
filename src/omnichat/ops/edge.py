"""The HTTP/1.1 protocol at the server's edge: uvicorn's httptools protocol, with the limits
it lacks.

uvicorn picks httptools when it is installed (``http="auto"``), the fastest of its parsers, and
that protocol bounds nothing at the edge: httptools keeps a header's partial name and value in
memory until the header ends (a 32 MB header was served), the keep-alive timer is cancelled by
the first byte a client sends and a new connection has none (a head trickled in, or never sent,
holds its connection for ever), and connections per client are not counted. uvicorn's h11
protocol caps the head (``h11_max_incomplete_event_size``, 431) but times out a slow head no
better, and parses slower. So this keeps httptools and adds, per connection:

* the request line and headers capped at ``max_header_bytes``: a longer head gets 431 and the
  connection is closed; no more than the cap plus one read (256 KiB) is held for it;
* a deadline for each head, ``header_timeout_s`` from the connection's opening or from the first
  byte of its next request: a head still incomplete then gets 408 and the connection is closed;
* chunk size lines, chunk extensions and trailers of a chunked body capped like a head
  (``max_header_bytes``, plus ``CHUNK_FRAMING_BYTES`` per chunk): past it the connection is
  dropped (httptools would keep an endless trailer in memory);
* a request body that stops arriving (no byte for ``body_idle_timeout_s`` while the server
  reads) has its connection dropped;
* open connections capped per client address (the peer): one above the cap gets 429 and is
  closed at once. Trusted proxies (uvicorn's ``forwarded_allow_ips``, except ``*``) are exempt:
  every client behind one arrives from its address.

A refused head is answered, then the connection is half-closed and whatever the client still
sends is read and dropped for ``LINGER_S`` (as nginx's lingering close): closing at once with
unread data would reset the connection, and the client would lose the answer.

The counts are per worker process. Idle kept-alive connections are closed by uvicorn itself
(``timeout_keep_alive``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from omnichat.addresses import client_key
from omnichat.settings import Settings

logger = logging.getLogger("omnichat.edge")
LINGER_S = 2.0
# Per chunk of a chunked body, the bytes its size line may take (hex size, extensions, CRLFs)
# beyond the head's cap shared by all chunk lines and trailers of one message.
CHUNK_FRAMING_BYTES = 256
# The request line's and each header line's separators, which the parser does not hand over.
_LINE_OVERHEAD = 4
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_header_bytes: int
    header_timeout_s: float
    max_connections_per_address: int
    body_idle_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout_s=settings.header_timeout_s,
            max_connections_per_address=settings.max_connections_per_address,
            body_idle_timeout_s=settings.body_idle_timeout_s,
        )


class TrustedProxies:
    """Addresses and networks from uvicorn's ``forwarded_allow_ips`` ("127.0.0.1,10.0.0.0/8");
    ``*`` names no proxy here (every peer would be exempt)."""

    def __init__(self, allowed: list[str] | str) -> None:
        entries = allowed.split(",") if isinstance(allowed, str) else allowed
        self._literals: set[str] = set()
        self._networks: list[_IPNetwork] = []
        for entry in (e.strip() for e in entries):
            if not entry or entry == "*":
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._literals.add(entry)

    def __contains__(self, address: str) -> bool:
        if address in self._literals:
            return True
        try:
            ip: _IPAddress = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket's IPv4 peer
        return any(ip in network for network in self._networks)


def edge_protocol(limits: EdgeLimits) -> type[EdgeProtocol]:
    """A protocol class for one server: ``limits``, and its own count of connections."""
    return type(
        "EdgeProtocol", (EdgeProtocol,), {"limits": limits, "open_per_address": {}, "trusted": None}
    )


class EdgeProtocol(HttpToolsProtocol):
    """Used as is (``http="omnichat.ops.edge:EdgeProtocol"``, e.g. in each of several worker
    processes), it reads its limits from the environment's settings at its first connection."""

    limits: ClassVar[EdgeLimits | None] = None
    open_per_address: ClassVar[dict[str, int]] = {}
    trusted: ClassVar[TrustedProxies | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        cls = type(self)
        if cls.limits is None:
            cls.limits = EdgeLimits.from_settings(Settings())
        if cls.trusted is None:
            cls.trusted = TrustedProxies(config.forwarded_allow_ips)
        self.edge_limits: EdgeLimits = cls.limits
        self._counted_address: str | None = None
        self._refused = False
        self._in_head = False
        self._heads_begun = 0
        self._head_bytes = 0  # of the head being read, in reads wholly inside it
        self._head_deadline: asyncio.TimerHandle | None = None
        # While a message's body arrives: the bytes that were not body (chunk size lines and
        # extensions, trailers), and the chunks begun.
        self._in_body = False
        self._framing_bytes = 0
        self._chunks = 0
        self._body_bytes = 0
        self._body_idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else None
        if peer is not None and self.trusted is not None and peer not in self.trusted:
            address = client_key(peer)  # an IPv6 client counts by its /64
            open_now = self.open_per_address.get(address, 0)
            if open_now >= self.edge_limits.max_connections_per_address:
                self._refused = True
                self._answer(429, "Too many open connections from your address", b"1")
                self.transport.close()
                return
            self.open_per_address[address] = open_now + 1
            self._counted_address = address
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        self._disarm_body_idle()
        address = self._counted_address
        if address is not None:
            self._counted_address = None
            left = self.open_per_address.get(address, 1) - 1
            if left > 0:
                self.open_per_address[address] = left
            else:
                self.open_per_address.pop(address, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: read and dropped
        was_in_head, heads_begun = self._in_head, self._heads_begun
        was_in_body, body_before = self._in_body, self._body_bytes
        super().data_received(data)
        if self._in_head and was_in_head and heads_begun == self._heads_begun:
            self._head_bytes += len(data)
            if self._head_bytes > self.edge_limits.max_header_bytes:
                self._refuse_head_too_large()
        elif self._in_body and was_in_body and heads_begun == self._heads_begun:
            self._arm_body_idle()  # a byte came: the idle time starts again
            self._framing_bytes += len(data) - (self._body_bytes - body_before)
            allowed = self.edge_limits.max_header_bytes + CHUNK_FRAMING_BYTES * self._chunks
            if self._framing_bytes > allowed:
                self._abort_framing_too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._heads_begun += 1
        self._head_bytes = 0
        if self._head_deadline is None:
            self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        self._disarm_head_deadline()
        head_bytes = len(self.url) + sum(len(n) + len(v) + _LINE_OVERHEAD for n, v in self.headers)
        if head_bytes > self.edge_limits.max_header_bytes:
            self._refuse_head_too_large()
            return
        self._in_body = True
        self._framing_bytes = self._chunks = self._body_bytes = 0
        self._arm_body_idle()
        super().on_headers_complete()

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm_body_idle()
        if not self._refused:
            super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(
            self.edge_limits.header_timeout_s, self._head_timed_out
        )

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or self._refused:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head trickling in behind a response still being sent: that response
            # ends normally, and the connection with it.
            self._refused = True
            self.cycle.keep_alive = False
            return
        self._refuse(408, "The request head was not sent in time")

    def _arm_body_idle(self) -> None:
        self._disarm_body_idle()
        self._body_idle = self.loop.call_later(
            self.edge_limits.body_idle_timeout_s, self._body_went_idle
        )

    def _disarm_body_idle(self) -> None:
        if self._body_idle is not None:
            self._body_idle.cancel()
            self._body_idle = None

    def _body_went_idle(self) -> None:
        self._body_idle = None
        if not self._in_body or self.transport.is_closing():
            return
        if self.flow.read_paused:  # the app has not taken what came: not the client's wait
            self._arm_body_idle()
            return
        logger.info("closing a connection whose request body stopped arriving")
        self._in_body = False
        self.transport.close()

    def _abort_framing_too_large(self) -> None:
        """Chunk framing or trailers past the cap: the request is under way (its response may
        have begun), so the connection is dropped; the app sees the client leave."""
        logger.warning(
            "closing a connection whose chunk framing and trailers passed %d bytes",
            self._framing_bytes,
        )
        self._refused = True
        self._in_body = False
        self.transport.close()

    def _refuse_head_too_large(self) -> None:
        self._refuse(
            431, f"The request line and headers exceed {self.edge_limits.max_header_bytes} bytes"
        )

    def _refuse(self, status: int, detail: str) -> None:
        """Answers ``status`` and closes the connection after a linger."""
        self._refused = True
        self._disarm_head_deadline()
        self._unset_keepalive_if_required()
        self._answer(status, detail)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_S, self.transport.close)

    def _answer(self, status: int, detail: str, retry_after: bytes | None = None) -> None:
        body = json.dumps({"detail": detail}).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        if retry_after is not None:
            head.append(b"retry-after: " + retry_after + b"\r\n")
        head += [
            b"content-type: application/json\r\n",
            b"content-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
