from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.api.ipallow import IpAllowlist, client_ip, parse_ip

PROXIES = IpAllowlist(["10.0.0.0/8", "fd00::/8"])


# --- IpAllowlist ---------------------------------------------------------------------------


def test_empty_allowlist_allows_everyone() -> None:
    allowlist = IpAllowlist([])
    assert allowlist.allows("203.0.113.7")
    assert allowlist.allows("2001:db8::1")
    assert not allowlist


def test_empty_list_contains_nobody() -> None:
    assert not IpAllowlist([]).contains("203.0.113.7")


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("192.0.2.1", True),
        ("192.0.2.255", True),
        ("192.0.3.0", False),
        ("198.51.100.9", True),
        ("198.51.100.10", False),
        ("2001:db8:1::42", True),
        ("2001:db8:2::42", False),
        ("2001:DB8:1:0:0:0:0:1", True),
    ],
)
def test_allowlist_matches_ipv4_and_ipv6_cidrs(ip: str, expected: bool) -> None:
    allowlist = IpAllowlist(["192.0.2.0/24", "198.51.100.9", "2001:db8:1::/48"])
    assert allowlist.allows(ip) is expected


def test_mapped_client_address_matches_an_ipv4_entry() -> None:
    allowlist = IpAllowlist(["192.0.2.0/24"])
    assert allowlist.allows("::ffff:192.0.2.10")
    assert allowlist.allows("::FFFF:c000:20a")
    assert not allowlist.allows("::ffff:192.0.3.10")


def test_mapped_allowlist_entry_matches_a_plain_ipv4_client() -> None:
    allowlist = IpAllowlist(["::ffff:192.0.2.0/120", "::ffff:198.51.100.9"])
    assert allowlist.networks == (
        ipaddress.IPv4Network("192.0.2.0/24"),
        ipaddress.IPv4Network("198.51.100.9/32"),
    )
    assert allowlist.allows("192.0.2.77")
    assert allowlist.allows("::ffff:198.51.100.9")
    assert not allowlist.allows("192.0.3.1")


def test_ipv6_any_does_not_admit_ipv4_clients() -> None:
    allowlist = IpAllowlist(["::/0"])
    assert allowlist.allows("2001:db8::1")
    assert not allowlist.allows("192.0.2.1")
    assert not allowlist.allows("::ffff:192.0.2.1")


def test_cidr_with_host_bits_is_rejected_with_a_suggestion() -> None:
    with pytest.raises(ValueError, match=r"host bits set; did you mean '10\.0\.0\.0/8'"):
        IpAllowlist(["10.0.0.1/8"])
    with pytest.raises(ValueError, match=r"host bits set; did you mean '2001:db8::/32'"):
        IpAllowlist(["2001:db8::1/32"])


@pytest.mark.parametrize("cidr", ["", "banana", "10.0.0.0/33", "300.1.1.1", "010.0.0.1", "::g/64"])
def test_invalid_cidr_is_rejected(cidr: str) -> None:
    with pytest.raises(ValueError, match="invalid CIDR"):
        IpAllowlist([cidr])


@pytest.mark.parametrize("ip", ["", "banana", "1.2.3.4:80", "[::1]", "1.2.3", "01.2.3.4"])
def test_malformed_client_address_is_refused_by_a_non_empty_allowlist(ip: str) -> None:
    assert not IpAllowlist(["0.0.0.0/0", "::/0"]).allows(ip)


def test_repr_lists_normalised_networks() -> None:
    assert repr(IpAllowlist(["::ffff:10.0.0.0/104", "10.0.0.0/8"])) == "IpAllowlist(['10.0.0.0/8'])"


def test_parse_ip_normalises_mapped_addresses() -> None:
    assert parse_ip(" ::ffff:1.2.3.4 ") == ipaddress.IPv4Address("1.2.3.4")
    assert parse_ip("2001:DB8::1") == ipaddress.IPv6Address("2001:db8::1")


@given(st.ip_addresses(v=4), st.integers(0, 32))
def test_ipv4_membership_agrees_with_its_mapped_form(
    address: ipaddress.IPv4Address, p: int
) -> None:
    network = ipaddress.IPv4Network((address, p), strict=False)
    allowlist = IpAllowlist([network.with_prefixlen])
    probe = ipaddress.IPv4Address(int(address) ^ 1)
    mapped = f"::ffff:{probe}"
    assert allowlist.allows(str(probe)) == allowlist.allows(mapped) == (probe in network)


# --- client_ip -----------------------------------------------------------------------------


def test_untrusted_peer_is_the_client_and_its_forwarded_for_is_ignored() -> None:
    assert client_ip("203.0.113.7", "1.1.1.1", PROXIES) == "203.0.113.7"


def test_trusted_peer_without_forwarded_for_is_returned() -> None:
    assert client_ip("10.0.0.2", None, PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", "", PROXIES) == "10.0.0.2"


def test_single_proxy_reports_the_client() -> None:
    assert client_ip("10.0.0.2", "203.0.113.7", PROXIES) == "203.0.113.7"


def test_chain_of_trusted_proxies_is_skipped() -> None:
    xff = "203.0.113.7, 10.1.1.1, fd00::5"
    assert client_ip("10.0.0.2", xff, PROXIES) == "203.0.113.7"


def test_client_supplied_leftmost_entry_never_wins() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; our proxy appended the real address.
    assert client_ip("10.0.0.2", "1.1.1.1, 203.0.113.7", PROXIES) == "203.0.113.7"


def test_client_claiming_to_be_a_trusted_proxy_is_not_skipped_past() -> None:
    # The spoofed "10.9.9.9" is left of the real client, so the walk stops before it.
    xff = "1.1.1.1, 10.9.9.9, 203.0.113.7"
    assert client_ip("10.0.0.2", xff, PROXIES) == "203.0.113.7"


def test_client_supplied_garbage_to_the_left_is_harmless() -> None:
    assert client_ip("10.0.0.2", "<script>, 203.0.113.7", PROXIES) == "203.0.113.7"


def test_every_hop_trusted_returns_the_leftmost() -> None:
    assert client_ip("10.0.0.2", "10.5.5.5, 10.6.6.6", PROXIES) == "10.5.5.5"


def test_malformed_hop_stops_the_walk_at_the_last_good_hop() -> None:
    assert client_ip("10.0.0.2", "203.0.113.7, bogus, 10.1.1.1", PROXIES) == "10.1.1.1"
    assert client_ip("10.0.0.2", "203.0.113.7, bogus", PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", "203.0.113.7,", PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", "203.0.113.7:4711", PROXIES) == "10.0.0.2"


def test_mapped_addresses_are_normalised_everywhere() -> None:
    assert client_ip("::ffff:10.0.0.2", "::ffff:203.0.113.7", PROXIES) == "203.0.113.7"
    assert client_ip("::ffff:203.0.113.7", None, PROXIES) == "203.0.113.7"
    xff = "198.51.100.1, ::ffff:10.1.1.1"
    assert client_ip("10.0.0.2", xff, PROXIES) == "198.51.100.1"


def test_ipv6_addresses_come_back_in_canonical_form() -> None:
    assert client_ip("fd00::1", "2001:DB8:0:0::7", PROXIES) == "2001:db8::7"


def test_unparseable_peer_is_returned_as_is_and_not_trusted() -> None:
    assert client_ip("unix:/run/sock", "203.0.113.7", PROXIES) == "unix:/run/sock"


def test_empty_trusted_proxy_list_trusts_nobody() -> None:
    assert client_ip("10.0.0.2", "203.0.113.7", IpAllowlist([])) == "10.0.0.2"


@given(
    spoofed=st.lists(
        st.one_of(st.ip_addresses().map(str), st.text(max_size=12)).filter(lambda s: "," not in s),
        max_size=6,
    ),
    client=st.ip_addresses(v=4).filter(lambda a: a not in ipaddress.IPv4Network("10.0.0.0/8")),
    proxies=st.lists(st.integers(0, 2**24 - 1), max_size=3),
)
def test_whatever_the_client_sends_a_proxy_appended_address_wins(
    spoofed: list[str], client: ipaddress.IPv4Address, proxies: list[int]
) -> None:
    hops = [*spoofed, str(client), *(str(ipaddress.IPv4Address(0x0A000000 + p)) for p in proxies)]
    assert client_ip("10.0.0.2", ", ".join(hops), PROXIES) == str(client)
