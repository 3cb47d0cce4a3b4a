"""Which client an address stands for, for per-address limits.

An IPv4 address is one client. An IPv6 host is routinely given a whole /64 (every home and
cloud network hands out one per subscriber or machine, and a host may pick any address in it at
will), so per-address limits keyed on the full IPv6 address would be no limit at all: IPv6
addresses count by their /64 network. An IPv4-mapped IPv6 address is its IPv4 address.
"""

from __future__ import annotations

import ipaddress

IPV6_CLIENT_PREFIX = 64


def client_key(address: str) -> str:
    """The key per-address limits count ``address`` under: an IPv4 address as it is, an IPv6
    address's /64 network (``"2001:db8:1:2::/64"``); anything that is no IP address as it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)
