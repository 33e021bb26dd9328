"""IP allowlists (IPv4 and IPv6 CIDR) and client-address resolution behind proxies.

Decisions:

* **Host bits are rejected.** ``10.0.0.1/8`` raises ``ValueError`` naming the network that was
  probably meant (``10.0.0.0/8``) rather than being silently widened: an allowlist is a
  security setting and a typo in it should be loud.
* **IPv4-mapped IPv6 is IPv4.** ``::ffff:1.2.3.4`` is matched as ``1.2.3.4``, in client
  addresses and in allowlist entries (``::ffff:10.0.0.0/104`` becomes ``10.0.0.0/8``).
  Consequently ``::/0`` matches every IPv6 address but no IPv4 or mapped address.
* **An empty allowlist allows every client**, but :meth:`IpAllowlist.contains` is plain
  membership, so an empty *trusted proxies* list trusts nobody.
* :func:`client_ip` walks ``X-Forwarded-For`` from the right, skipping trusted proxies, and
  returns the first hop it cannot vouch for. Entries a client wrote itself sit to the left of
  what our proxies append, so they can never win while a trusted proxy appends. Pass every
  ``X-Forwarded-For`` header value joined with ``","`` in the order received.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Protocol

__all__ = ["IpAddress", "IpAllowlist", "IpNetwork", "TrustedProxies", "client_ip", "parse_ip"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAPPED_V4 = ipaddress.IPv6Network("::ffff:0:0/96")


class TrustedProxies(Protocol):
    """What :func:`client_ip` needs: membership, with empty meaning 'nobody'."""

    def contains(self, ip: str) -> bool: ...


def parse_ip(text: str) -> IpAddress:
    """Parse an address, mapping ``::ffff:a.b.c.d`` to IPv4. Raises ``ValueError``."""
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_network(text: str) -> IpNetwork:
    entry = text.strip()
    try:
        network = ipaddress.ip_network(entry, strict=True)
    except ValueError:
        try:
            widened = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"invalid CIDR {entry!r}") from None
        raise ValueError(
            f"CIDR {entry!r} has host bits set; did you mean {widened.with_prefixlen!r}?"
        ) from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED_V4):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:  # always, given subnet_of(::ffff:0:0/96)
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


class IpAllowlist:
    """A set of CIDR networks. Empty means 'no restriction' for :meth:`allows`."""

    __slots__ = ("_networks",)

    def __init__(self, cidrs: Iterable[str]) -> None:
        networks = {_parse_network(c) for c in cidrs}
        self._networks: tuple[IpNetwork, ...] = tuple(
            sorted(networks, key=lambda n: (n.version, n.network_address, n.prefixlen))
        )

    @property
    def networks(self) -> tuple[IpNetwork, ...]:
        return self._networks

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __repr__(self) -> str:
        return f"IpAllowlist({[n.with_prefixlen for n in self._networks]!r})"

    def contains(self, ip: str) -> bool:
        """Whether ``ip`` lies in one of the networks. Malformed or empty list: ``False``."""
        try:
            address = parse_ip(ip)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def allows(self, ip: str) -> bool:
        """Whether a client at ``ip`` may proceed. An empty allowlist allows everyone."""
        return not self._networks or self.contains(ip)


def client_ip(peer: str, x_forwarded_for: str | None, trusted_proxies: TrustedProxies) -> str:
    """The address to attribute a request to.

    If ``peer`` (the socket address) is not a trusted proxy, it is the client and
    ``X-Forwarded-For`` is ignored. Otherwise hops are read right to left, skipping trusted
    proxies; the first untrusted hop is the client. A malformed hop (including ``host:port``
    forms and empty entries) stops the walk and the last well-formed hop (possibly ``peer``) is
    returned. Addresses come back normalised; an unparseable ``peer`` is returned unchanged.
    """
    current = _normalise(peer)
    if not trusted_proxies.contains(current) or not x_forwarded_for:
        return current
    for hop in reversed(x_forwarded_for.split(",")):
        try:
            current = str(parse_ip(hop))
        except ValueError:
            return current
        if not trusted_proxies.contains(current):
            return current
    return current


def _normalise(ip: str) -> str:
    try:
        return str(parse_ip(ip))
    except ValueError:
        return ip
