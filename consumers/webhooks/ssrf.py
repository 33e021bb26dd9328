"""Refuse webhook destinations that are not on the public internet (SSRF guard).

:func:`resolve_checked` resolves a host name once, refuses it if *any* address is forbidden,
and returns the checked addresses; the caller connects only to those, so a second DNS answer
(rebinding) cannot redirect the request. IPv6 forms that embed or tunnel to an IPv4 address
(IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64) are judged by the embedded address or
refused outright. Numeric host forms that some resolvers read as IPv4 (``2130706433``,
``0x7f.1``, ``0177.0.0.1``) are refused rather than guessed at.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "DestinationError",
    "ForbiddenDestinationError",
    "UnresolvableDestinationError",
    "is_forbidden_address",
    "resolve_checked",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]


class DestinationError(ValueError):
    """A webhook destination cannot be used."""


class ForbiddenDestinationError(DestinationError):
    """The destination is, or resolves to, an address outside the public internet."""


class UnresolvableDestinationError(DestinationError):
    """The destination's host name did not resolve (possibly transient)."""


def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Listed explicitly rather than relying only on ``is_global``, whose tables differ between
# Python patch releases.
_FORBIDDEN_V4 = _nets(
    "0.0.0.0/8",  # "this network", includes the unspecified address
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, cloud metadata
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation TEST-NET-1
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation TEST-NET-2
    "203.0.113.0/24",  # documentation TEST-NET-3
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, includes broadcast 255.255.255.255
)
_FORBIDDEN_V6 = _nets(
    "::/128",  # unspecified
    "::1/128",  # loopback
    "::/96",  # IPv4-compatible (deprecated)
    "::ffff:0:0/96",  # IPv4-mapped: only reached if the embedded check is bypassed
    "64:ff9b::/96",  # NAT64 well-known prefix
    "64:ff9b:1::/48",  # NAT64 local use
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments, includes Teredo 2001::/32, benchmarking
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "3fff::/20",  # documentation (RFC 9637)
    "5f00::/16",  # SRv6 SIDs
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated)
    "ff00::/8",  # multicast
)
_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.ip_address("::1")


def is_forbidden_address(ip: IPAddress, *, allow_loopback: bool = False) -> bool:
    """Return True unless ``ip`` is a public unicast address (or allowed loopback)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_forbidden_address(ip.ipv4_mapped, allow_loopback=allow_loopback)
        if allow_loopback and ip == _LOOPBACK_V6 and ip.scope_id is None:
            return False
        if ip.scope_id is not None:
            return True
        return any(ip in net for net in _FORBIDDEN_V6) or not ip.is_global
    if allow_loopback and ip in _LOOPBACK_V4:
        return False
    return any(ip in net for net in _FORBIDDEN_V4) or not ip.is_global or ip.is_multicast


def _is_number_label(label: str) -> bool:
    lowered = label.lower()
    if lowered.startswith("0x"):
        return all(c in "0123456789abcdef" for c in lowered[2:])
    return lowered.isascii() and lowered.isdigit()


def _parse_literal(host: str) -> IPAddress | None:
    """Return the address ``host`` names literally; refuse ambiguous numeric forms."""
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ForbiddenDestinationError(f"malformed IPv6 literal {host!r}") from None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    labels = host.split(".")
    if labels and labels[-1] == "":
        labels.pop()
    # WHATWG URL parsing treats a host whose last label is numeric as IPv4, and inet_aton
    # accepts octal, hex and fewer than four parts. Refuse what ipaddress did not accept.
    if labels and _is_number_label(labels[-1]):
        raise ForbiddenDestinationError(f"ambiguous numeric host {host!r}")
    if ":" in host or "%" in host or "[" in host or "]" in host:
        raise ForbiddenDestinationError(f"malformed address literal {host!r}")
    return None


def _normalise(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _refuse_if_forbidden(ip: IPAddress, host: str, *, allow_loopback: bool) -> None:
    if is_forbidden_address(ip, allow_loopback=allow_loopback):
        raise ForbiddenDestinationError(f"{host!r} resolves to non-public address {ip}")


def resolve_checked(
    host: str,
    port: int,
    *,
    allow_loopback: bool,
    resolver: Resolver = socket.getaddrinfo,
) -> list[str]:
    """Resolve ``host`` and return its addresses, refusing if any of them is forbidden."""
    if not host or not host.isascii() or any(c.isspace() for c in host):
        raise ForbiddenDestinationError(f"host must be a non-empty ASCII (IDNA) name: {host!r}")
    literal = _parse_literal(host)
    if literal is not None:
        _refuse_if_forbidden(literal, host, allow_loopback=allow_loopback)
        return [str(_normalise(literal))]
    try:
        infos = resolver(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableDestinationError(f"cannot resolve {host!r}: {exc}") from None
    addresses: list[str] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise ForbiddenDestinationError(f"{host!r} resolved to a non-IP address family")
        try:
            ip = ipaddress.ip_address(sockaddr[0])
        except ValueError:
            raise ForbiddenDestinationError(f"{host!r} resolved to {sockaddr[0]!r}") from None
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            raise ForbiddenDestinationError(f"{host!r} resolved to a scoped address {ip}")
        _refuse_if_forbidden(ip, host, allow_loopback=allow_loopback)
        text = str(_normalise(ip))
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise UnresolvableDestinationError(f"{host!r} has no addresses")
    return addresses
