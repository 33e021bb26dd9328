from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from consumers.webhooks.ssrf import ForbiddenDestinationError
from consumers.webhooks.transport import build_pinned_requests, send_pinned


def resolver_for(*addresses: str) -> Callable[..., list[tuple[Any, ...]]]:
    def resolve(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    return resolve


PUBLIC = resolver_for("93.184.216.34")


def recording_client(
    seen: list[httpx.Request], respond: Callable[[httpx.Request], httpx.Response] | None = None
) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return respond(request) if respond else httpx.Response(204)

    return httpx.Client(transport=httpx.MockTransport(handler))


def post(client: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
    options: dict[str, Any] = {
        "content": b"{}",
        "headers": {"content-type": "application/json"},
        "timeout": 5.0,
        "allow_loopback": False,
        "resolver": PUBLIC,
    }
    options.update(kwargs)
    return send_pinned(client, "POST", url, **options)


def test_https_request_goes_to_the_checked_ip_with_original_host_and_sni() -> None:
    seen: list[httpx.Request] = []
    post(recording_client(seen), "https://hooks.example.com/ledger?x=1")
    (request,) = seen
    assert request.url.host == "93.184.216.34"
    assert request.url.scheme == "https"
    assert request.url.raw_path == b"/ledger?x=1"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.headers["connection"] == "close"


def test_http_request_keeps_a_non_default_port_in_the_host_header() -> None:
    seen: list[httpx.Request] = []
    post(recording_client(seen), "http://hooks.example.com:8080/in")
    (request,) = seen
    assert request.url.port == 8080
    assert request.headers["host"] == "hooks.example.com:8080"
    assert "sni_hostname" not in request.extensions


def test_caller_cannot_override_the_pinned_host_header() -> None:
    seen: list[httpx.Request] = []
    post(recording_client(seen), "http://hooks.example.com/", headers={"Host": "internal"})
    assert seen[0].headers.get_list("host") == ["hooks.example.com"]


def test_ipv6_destination_is_bracketed_in_the_url() -> None:
    seen: list[httpx.Request] = []
    post(
        recording_client(seen),
        "https://hooks.example.com/",
        resolver=resolver_for("2606:2800:220:1::1"),
    )
    assert seen[0].url.netloc == b"[2606:2800:220:1::1]"


def test_redirects_are_returned_not_followed() -> None:
    seen: list[httpx.Request] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://169.254.169.254/latest"})

    response = post(recording_client(seen, redirect), "https://hooks.example.com/")
    assert response.status_code == 302
    assert len(seen) == 1


def test_next_checked_address_is_tried_when_a_connection_fails() -> None:
    seen: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.host == "93.184.216.34":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200)

    response = post(
        recording_client(seen, flaky),
        "https://hooks.example.com/",
        resolver=resolver_for("93.184.216.34", "93.184.216.35"),
    )
    assert response.status_code == 200
    assert [r.url.host for r in seen] == ["93.184.216.34", "93.184.216.35"]


def test_connect_error_is_raised_when_every_address_fails() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(httpx.ConnectError):
        post(recording_client([], refuse), "https://hooks.example.com/")


@pytest.mark.parametrize(
    "url",
    [
        "https://internal.example/",  # resolves to a private address below
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/",
        "http://0x7f.1/",
        "http://2130706433/",
        "ftp://hooks.example.com/",
        "https://user:pass@hooks.example.com/",
    ],
)
def test_forbidden_destination_is_refused_before_any_request(url: str) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(ForbiddenDestinationError):
        post(recording_client(seen), url, resolver=resolver_for("10.1.2.3"))
    assert seen == []


def test_one_pinned_request_per_checked_address() -> None:
    pinned = build_pinned_requests(
        "https://hooks.example.com/x",
        allow_loopback=False,
        resolver=resolver_for("93.184.216.34", "2606:2800:220:1::1"),
    )
    assert [str(p.url) for p in pinned] == [
        "https://93.184.216.34/x",
        "https://[2606:2800:220:1::1]/x",
    ]
    assert all(p.extensions == {"sni_hostname": "hooks.example.com"} for p in pinned)
