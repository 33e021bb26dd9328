"""Send one webhook request to a pre-checked IP address, never following redirects.

The URL's host name is resolved once by :func:`~consumers.webhooks.ssrf.resolve_checked`; the
request then goes to the checked IP address itself. For ``https`` the TLS server name (SNI)
and certificate verification still use the original host name, through httpcore's
``sni_hostname`` request extension; the ``Host`` header always carries the original name.

Connection reuse would undo the pinning for ``https`` (the pool is keyed by IP, so a
connection verified for one host name could carry another host's request), so every pinned
request asks for ``Connection: close``, and :func:`new_pinned_client` also disables
keep-alive. Use a client built by :func:`new_pinned_client` (or one configured the same way)
only for pinned sends. Its ``trust_env=False`` keeps proxy variables from bypassing the check.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping

import httpx

from consumers.webhooks.ssrf import ForbiddenDestinationError, Resolver, resolve_checked

__all__ = ["PinnedRequest", "build_pinned_requests", "new_pinned_client", "send_pinned"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class PinnedRequest:
    """The pieces of a request pinned to one address: URL, extensions and extra headers."""

    __slots__ = ("extensions", "headers", "url")

    def __init__(self, url: httpx.URL, extensions: dict[str, str], headers: dict[str, str]):
        self.url = url
        self.extensions = extensions
        self.headers = headers


def new_pinned_client(
    *, timeout: float | httpx.Timeout = 10.0, verify: ssl.SSLContext | bool = True
) -> httpx.Client:
    """Build a client suited to :func:`send_pinned`: no keep-alive, no proxies, no redirects."""
    return httpx.Client(
        timeout=timeout,
        verify=verify,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def build_pinned_requests(
    url: str | httpx.URL,
    *,
    allow_loopback: bool,
    resolver: Resolver = socket.getaddrinfo,
) -> list[PinnedRequest]:
    """Resolve and check ``url``'s host; return one pinned request per checked address."""
    parsed = httpx.URL(url)
    if parsed.scheme not in _DEFAULT_PORTS:
        raise ForbiddenDestinationError(f"webhook URLs are http or https, not {parsed.scheme!r}")
    if parsed.userinfo:
        raise ForbiddenDestinationError("webhook URLs may not carry credentials")
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    addresses = resolve_checked(host, port, allow_loopback=allow_loopback, resolver=resolver)
    host_header = parsed.netloc.decode("ascii")
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return [
        PinnedRequest(
            url=parsed.copy_with(host=address),
            extensions=dict(extensions),
            headers={"Host": host_header, "Connection": "close"},
        )
        for address in addresses
    ]


def send_pinned(
    client: httpx.Client,
    method: str,
    url: str | httpx.URL,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float | httpx.Timeout,
    allow_loopback: bool,
    resolver: Resolver = socket.getaddrinfo,
) -> httpx.Response:
    """Send to the first checked address that accepts a connection; never follow redirects.

    Raises ``ForbiddenDestinationError`` / ``UnresolvableDestinationError`` before any
    connection is made, and the last ``httpx.ConnectError`` if no address accepts one.
    """
    pinned = build_pinned_requests(url, allow_loopback=allow_loopback, resolver=resolver)
    last_error: httpx.ConnectError | None = None
    for attempt in pinned:
        merged = httpx.Headers(headers)
        merged.update(attempt.headers)  # replaces any caller-supplied Host / Connection
        request = client.build_request(
            method,
            attempt.url,
            content=content,
            headers=merged,
            timeout=timeout,
            extensions=attempt.extensions,
        )
        try:
            return client.send(request, follow_redirects=False)
        except httpx.ConnectError as exc:
            last_error = exc
    if last_error is None:  # unreachable: resolve_checked never returns an empty list
        raise ForbiddenDestinationError(f"no address to connect to for {url!s}")
    raise last_error
