"""The address guard's NAT64 reading (RFC 6052, RFC 8215) and its refusal of scoped IPv6 addresses."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from worker.common.net import (
    BlockedAddress,
    FetchConnectionError,
    blocked_reason,
    check_url,
    classify_address,
    nat64_candidates,
    nat64_ipv4,
)

# RFC 6052 section 2.4, the table of examples: 192.0.2.33 embedded under each prefix length.
RFC6052_EXAMPLES = [
    (32, "2001:db8:c000:221::"),
    (40, "2001:db8:1c0:2:21::"),
    (48, "2001:db8:122:c000:2:2100::"),
    (56, "2001:db8:122:3c0:0:221::"),
    (64, "2001:db8:122:344:c0:2:2100::"),
    (96, "2001:db8:122:344::192.0.2.33"),
]


@pytest.mark.parametrize(("length", "embedded"), RFC6052_EXAMPLES)
def test_the_rfc_6052_examples_decode_to_their_ipv4_address(length: int, embedded: str) -> None:
    assert nat64_ipv4(ipaddress.IPv6Address(embedded), length) == ipaddress.IPv4Address("192.0.2.33")


# A /96 prefix covers bits 64–71 itself: there the u-octet is part of the prefix, not a gap.
@pytest.mark.parametrize(("length", "embedded"), RFC6052_EXAMPLES[:-1])
def test_the_u_octet_is_never_read_as_part_of_the_address(length: int, embedded: str) -> None:
    # Bits 64–71 set to anything: the decoded address is the same.
    packed = bytearray(ipaddress.IPv6Address(embedded).packed)
    packed[8] = 0xFF
    assert nat64_ipv4(ipaddress.IPv6Address(bytes(packed)), length) == ipaddress.IPv4Address(
        "192.0.2.33"
    )


def test_a_prefix_length_rfc_6052_does_not_define_is_refused() -> None:
    with pytest.raises(ValueError, match="not 80"):
        nat64_ipv4(ipaddress.IPv6Address("64:ff9b::1"), 80)


def test_the_well_known_prefix_carries_its_address_in_the_last_32_bits() -> None:
    # RFC 6052 section 2.4: 192.0.2.33 under 64:ff9b::/96.
    address = ipaddress.IPv6Address("64:ff9b::c000:221")
    assert nat64_candidates(address) == (ipaddress.IPv4Address("192.0.2.33"),)
    assert classify_address(address) == "reserved, embedded in IPv6 as 192.0.2.33"


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("64:ff9b:1:cb00:71:700::", "203.0.113.7"),  # /48: documentation range, reserved
        ("64:ff9b:1:c000:2:2100::", "192.0.2.33"),  # /48: RFC 6052's own example, reserved
        ("64:ff9b:1:a00:0:100::", "10.0.0.1"),  # /48: private
        ("64:ff9b:1:ff7f:0:1::", "127.0.0.1"),  # /56 within the local-use /48: loopback
        ("64:ff9b:1:0:a9:fea9:fe00:0", "169.254.169.254"),  # /64: the metadata service
        ("64:ff9b:1::a00:1", "10.0.0.1"),  # /96 within the local-use /48
    ],
)
def test_a_non_public_address_in_the_local_use_prefix_is_refused_at_any_length(
    address: str, inner: str
) -> None:
    v6 = ipaddress.IPv6Address(address)
    assert ipaddress.IPv4Address(inner) in nat64_candidates(v6)
    reason = blocked_reason(v6)
    assert reason is not None
    assert "embedded in IPv6 as" in reason


def test_a_public_address_under_the_local_use_prefix_passes() -> None:
    # 93.184.215.14 at /48: its other readings (/56 184.215.14.0, /64 215.14.0.0) are public too.
    v6 = ipaddress.IPv6Address("64:ff9b:1:5db8:d7:e00::")
    assert ipaddress.IPv4Address("93.184.215.14") in nat64_candidates(v6)
    assert blocked_reason(v6) is None


def test_an_allowed_network_admits_a_nat64_address_only_when_every_reading_is_allowed() -> None:
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    assert blocked_reason(ipaddress.IPv6Address("64:ff9b::7f00:1"), loopback) is None
    # /48 reads 127.0.0.1, /56 reads 0.0.1.0: not every reading is in 127.0.0.0/8.
    v6 = ipaddress.IPv6Address("64:ff9b:1:7f00:0:100::")
    assert ipaddress.IPv4Address("127.0.0.1") in nat64_candidates(v6)
    assert blocked_reason(v6, loopback) is not None


def _scoped_resolver(address: str, scope: int) -> Any:
    """getaddrinfo as the C library answers a scoped name: (address, port, flowinfo, scope_id)."""

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, scope))]

    return getaddrinfo


@pytest.mark.parametrize("url", ["http://[fe80::1%25eth0]/feed", "http://shop.example/feed"])
def test_a_scoped_address_from_the_resolver_is_refused(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # A global-looking address with a zone index: only the scope makes it non-public.
    monkeypatch.setattr(socket, "getaddrinfo", _scoped_resolver("2606:2800:21f::1", 2))
    with pytest.raises(BlockedAddress, match=r"2606:2800:21f::1%2, which is scoped \(zone index\)"):
        check_url(url, ())


def test_a_scoped_answer_is_refused_even_inside_an_allowed_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The zone index names an interface of this machine: an allowance is for addresses only.
    monkeypatch.setattr(socket, "getaddrinfo", _scoped_resolver("fe80::1", 3))
    allow = (ipaddress.ip_network("fe80::/10"),)
    with pytest.raises(BlockedAddress, match=r"fe80::1%3, which is scoped"):
        check_url("http://[fe80::1%25eth0]/", allow)


def test_the_same_address_without_a_scope_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _scoped_resolver("2606:2800:21f::1", 0))
    resolved = check_url("http://shop.example/feed", ())
    assert resolved.addresses == (ipaddress.IPv6Address("2606:2800:21f::1"),)


def _teredo(server: str, client: str, port: int = 40000) -> ipaddress.IPv6Address:
    """RFC 4380 section 4: 2001:0000::/32, the server's IPv4 address, 16 bits of flags, then the
    client's port and IPv4 address, both with every bit inverted."""
    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64)
    value |= (port ^ 0xFFFF) << 32
    value |= int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    return ipaddress.IPv6Address(value)


def test_a_teredo_address_is_judged_by_its_client_address() -> None:
    # The widely quoted example: server 65.54.227.120, client 192.0.2.45 on port 40000.
    example = ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2")
    assert example.teredo == (ipaddress.IPv4Address("65.54.227.120"),
                              ipaddress.IPv4Address("192.0.2.45"))
    reason = classify_address(example)
    assert reason is not None and reason.endswith("embedded in IPv6 as 192.0.2.45")


@pytest.mark.parametrize(
    ("server", "client", "blocked"),
    [
        ("65.54.227.120", "10.1.2.3", "private, embedded in IPv6 as 10.1.2.3"),
        ("65.54.227.120", "127.0.0.1", "loopback, embedded in IPv6 as 127.0.0.1"),
        # The server only relays: a private server with a public client is the client's traffic.
        ("10.0.0.1", "8.8.8.8", None),
    ],
)
def test_teredo_traffic_ends_at_the_client(server: str, client: str, blocked: str | None) -> None:
    assert classify_address(_teredo(server, client)) == blocked
    assert blocked_reason(_teredo(server, client)) == blocked


def test_a_name_answering_no_ip_family_is_a_connection_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return [(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", "/run/shop.sock")]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(FetchConnectionError, match=r"host 'shop.example' of .* has no IP address"):
        check_url("http://shop.example/feed", ())
