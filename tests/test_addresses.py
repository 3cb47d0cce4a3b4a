"""Which client an address counts as for per-address limits (``omnichat.addresses``)."""

from __future__ import annotations

import pytest

from omnichat.addresses import client_key


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:DB8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4-mapped: the IPv4 client
        ("fe80::1%eth0", "fe80::/64"),  # scoped
        ("unknown", "unknown"),
        ("testclient", "testclient"),
    ],
)
def test_ipv4_counts_per_address_and_ipv6_per_64(address: str, key: str) -> None:
    assert client_key(address) == key
