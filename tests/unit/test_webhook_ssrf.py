from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

import pytest

from consumers.webhooks.ssrf import (
    ForbiddenDestinationError,
    UnresolvableDestinationError,
    is_forbidden_address,
    resolve_checked,
)

FORBIDDEN = {
    "this-network 0.0.0.0/8": ["0.0.0.0", "0.1.2.3", "0.255.255.255"],
    "private 10/8": ["10.0.0.1", "10.255.255.254"],
    "cgnat 100.64/10": ["100.64.0.1", "100.127.255.254"],
    "loopback 127/8": ["127.0.0.1", "127.1.2.3"],
    "link-local 169.254/16": ["169.254.169.254", "169.254.0.1"],
    "private 172.16/12": ["172.16.0.1", "172.31.255.254"],
    "ietf 192.0.0/24": ["192.0.0.1", "192.0.0.170"],
    "documentation 192.0.2/24": ["192.0.2.1"],
    "6to4 relay 192.88.99/24": ["192.88.99.1"],
    "private 192.168/16": ["192.168.1.1"],
    "benchmarking 198.18/15": ["198.18.0.1", "198.19.255.254"],
    "documentation 198.51.100/24": ["198.51.100.7"],
    "documentation 203.0.113/24": ["203.0.113.9"],
    "multicast 224/4": ["224.0.0.1", "239.255.255.250"],
    "reserved 240/4": ["240.0.0.1", "250.1.2.3"],
    "broadcast": ["255.255.255.255"],
    "v6 unspecified": ["::"],
    "v6 loopback": ["::1"],
    "v4-compatible": ["::8.8.8.8", "::7f00:1"],
    "v4-mapped private": ["::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:7f00:1"],
    "v4-mapped loopback": ["::ffff:127.0.0.1"],
    "nat64 well-known": ["64:ff9b::7f00:1", "64:ff9b::808:808"],
    "nat64 local-use": ["64:ff9b:1::1"],
    "discard 100::/64": ["100::1"],
    "teredo 2001::/32": ["2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"],
    "benchmarking 2001:2::/48": ["2001:2::1"],
    "documentation 2001:db8::/32": ["2001:db8::1"],
    "documentation 3fff::/20": ["3fff::1"],
    "6to4 2002::/16": ["2002:7f00:1::1", "2002:808:808::1"],
    "ula fc00::/7": ["fc00::1", "fd12:3456:789a::1"],
    "link-local fe80::/10": ["fe80::1"],
    "site-local fec0::/10": ["fec0::1"],
    "multicast ff00::/8": ["ff02::1", "ff0e::1"],
}
FORBIDDEN_CASES = [(name, addr) for name, addrs in FORBIDDEN.items() for addr in addrs]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("range_name", "address"), FORBIDDEN_CASES)
def test_non_public_address_is_forbidden(range_name: str, address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(("range_name", "address"), FORBIDDEN_CASES)
def test_non_public_literal_host_is_refused(range_name: str, address: str) -> None:
    with pytest.raises(ForbiddenDestinationError):
        resolve_checked(address, 443, allow_loopback=False, resolver=unreachable_resolver)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_address_is_allowed(address: str) -> None:
    assert not is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_allow_loopback_permits_loopback(address: str) -> None:
    assert not is_forbidden_address(ipaddress.ip_address(address), allow_loopback=True)


@pytest.mark.parametrize(
    "address", ["10.0.0.1", "192.168.0.1", "169.254.169.254", "fe80::1", "fd00::1", "0.0.0.0", "::"]
)
def test_allow_loopback_does_not_permit_other_private_ranges(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address), allow_loopback=True)


def test_scoped_loopback_is_forbidden_even_with_allow_loopback() -> None:
    assert is_forbidden_address(ipaddress.ip_address("::1%lo"), allow_loopback=True)


# --- resolution ----------------------------------------------------------------------------


def unreachable_resolver(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    raise AssertionError("literal addresses must not be resolved")


def fake_resolver(*addresses: str) -> Any:
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> Sequence[tuple[Any, ...]]:
        infos: list[tuple[Any, ...]] = []
        for address in addresses:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos

    return resolve


def test_public_name_resolves_to_its_checked_addresses() -> None:
    resolver = fake_resolver("93.184.216.34", "2606:2800:220:1::1", "93.184.216.34")
    got = resolve_checked("example.com", 443, allow_loopback=False, resolver=resolver)
    assert got == ["93.184.216.34", "2606:2800:220:1::1"]


def test_name_is_refused_if_any_resolved_address_is_forbidden() -> None:
    resolver = fake_resolver("93.184.216.34", "10.0.0.5")
    with pytest.raises(ForbiddenDestinationError, match=r"10\.0\.0\.5"):
        resolve_checked("rebind.example", 443, allow_loopback=False, resolver=resolver)


def test_mapped_address_from_dns_is_judged_and_normalised_to_ipv4() -> None:
    resolver = fake_resolver("::ffff:93.184.216.34")
    assert resolve_checked("x.example", 80, allow_loopback=False, resolver=resolver) == [
        "93.184.216.34"
    ]
    with pytest.raises(ForbiddenDestinationError):
        resolve_checked(
            "x.example", 80, allow_loopback=False, resolver=fake_resolver("::ffff:192.168.0.1")
        )


def test_scoped_ipv6_answer_is_refused() -> None:
    def resolver(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:2800:220:1::1", port, 0, 3))]

    with pytest.raises(ForbiddenDestinationError):
        resolve_checked("x.example", 80, allow_loopback=False, resolver=resolver)


def test_localhost_name_is_refused_unless_loopback_allowed() -> None:
    resolver = fake_resolver("127.0.0.1", "::1")
    with pytest.raises(ForbiddenDestinationError):
        resolve_checked("localhost", 80, allow_loopback=False, resolver=resolver)
    got = resolve_checked("localhost", 80, allow_loopback=True, resolver=resolver)
    assert got == ["127.0.0.1", "::1"]


def test_resolution_failure_is_reported_as_unresolvable() -> None:
    def resolver(*args: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UnresolvableDestinationError):
        resolve_checked("nowhere.invalid", 443, allow_loopback=False, resolver=resolver)
    with pytest.raises(UnresolvableDestinationError):
        resolve_checked("empty.example", 443, allow_loopback=False, resolver=fake_resolver())


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # decimal 127.0.0.1
        "0x7f000001",
        "0x7f.1",
        "0177.0.0.1",  # octal
        "127.1",
        "127.0.1",
        "127.0.0.1.",  # trailing dot
        "010.0.0.1",
        "0x0a.0.0.1",
        "3232235521",  # 192.168.0.1
        "1.2.3.04",
        "evil.example.0x10",
        "[127.0.0.1]",
        "::1%lo",
        "[fe80::1%25eth0]",
        "",
        "bücher.example",
        "exa mple.com",
    ],
)
def test_ambiguous_or_malformed_host_is_refused_without_resolving(host: str) -> None:
    with pytest.raises(ForbiddenDestinationError):
        resolve_checked(host, 80, allow_loopback=True, resolver=unreachable_resolver)


def test_bracketed_ipv6_literal_is_understood() -> None:
    got = resolve_checked(
        "[2606:4700:4700::1111]", 443, allow_loopback=False, resolver=unreachable_resolver
    )
    assert got == ["2606:4700:4700::1111"]
    assert resolve_checked("[::1]", 80, allow_loopback=True, resolver=unreachable_resolver) == [
        "::1"
    ]


def test_public_literal_is_returned_without_resolving() -> None:
    got = resolve_checked("8.8.8.8", 443, allow_loopback=False, resolver=unreachable_resolver)
    assert got == ["8.8.8.8"]
