"""Pinned sends against real loopback servers (plain HTTP and HTTPS with a test CA)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from consumers.webhooks.signing import build_headers
from consumers.webhooks.ssrf import ForbiddenDestinationError
from consumers.webhooks.transport import new_pinned_client, send_pinned
from consumers.webhooks.verify import Webhook

KEY = bytes(range(32))


@dataclass
class Received:
    requests: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Server:
    port: int
    received: Received


def handler_class(received: Received) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.requests.append(
                {"path": self.path, "headers": dict(self.headers.items()), "body": body}
            )
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/")
            else:
                self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve(wrap: Callable[[socket.socket], socket.socket] | None = None) -> Iterator[Server]:
    received = Received()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(received))
    if wrap is not None:
        server.socket = wrap(server.socket)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield Server(port=server.server_address[1], received=received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def resolver_to_loopback(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


@pytest.fixture
def http_server() -> Iterator[Server]:
    yield from serve()


@dataclass
class TlsServer:
    server: Server
    client_context: ssl.SSLContext


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[TlsServer]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("receiver.test")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    client_context = ssl.create_default_context(cafile=str(cert_path))

    def wrap(sock: socket.socket) -> socket.socket:
        return server_context.wrap_socket(sock, server_side=True)

    for server in serve(wrap):
        yield TlsServer(server=server, client_context=client_context)


def deliver(
    url: str, *, allow_loopback: bool, client: httpx.Client | None = None
) -> httpx.Response:
    body = b'{"type":"license.issued"}'
    headers = build_headers([KEY], "evt_1", 1_700_000_000, body)
    with client or new_pinned_client() as http:
        return send_pinned(
            http,
            "POST",
            url,
            content=body,
            headers=headers,
            timeout=5.0,
            allow_loopback=allow_loopback,
            resolver=resolver_to_loopback,
        )


def test_pinned_delivery_reaches_a_loopback_receiver_when_allowed(http_server: Server) -> None:
    response = deliver(f"http://receiver.test:{http_server.port}/hook", allow_loopback=True)
    assert response.status_code == 204
    (request,) = http_server.received.requests
    assert request["path"] == "/hook"
    assert request["headers"]["Host"] == f"receiver.test:{http_server.port}"
    at = dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)
    assert Webhook(KEY).verify(request["body"], request["headers"], now=at) == {
        "type": "license.issued"
    }


def test_literal_loopback_url_works_when_allowed(http_server: Server) -> None:
    response = deliver(f"http://127.0.0.1:{http_server.port}/hook", allow_loopback=True)
    assert response.status_code == 204


def test_loopback_receiver_is_refused_without_allow_loopback(http_server: Server) -> None:
    with pytest.raises(ForbiddenDestinationError):
        deliver(f"http://receiver.test:{http_server.port}/hook", allow_loopback=False)
    assert http_server.received.requests == []


def test_redirect_from_a_real_server_is_not_followed(http_server: Server) -> None:
    response = deliver(f"http://receiver.test:{http_server.port}/redirect", allow_loopback=True)
    assert response.status_code == 302
    assert len(http_server.received.requests) == 1


def test_https_pinned_delivery_verifies_the_certificate_for_the_host_name(
    https_server: TlsServer,
) -> None:
    client = new_pinned_client(verify=https_server.client_context)
    url = f"https://receiver.test:{https_server.server.port}/hook"
    assert deliver(url, allow_loopback=True, client=client).status_code == 204
    assert https_server.server.received.requests[0]["headers"]["Host"] == (
        f"receiver.test:{https_server.server.port}"
    )


def test_https_pinned_delivery_fails_when_the_certificate_names_another_host(
    https_server: TlsServer,
) -> None:
    client = new_pinned_client(verify=https_server.client_context)
    url = f"https://impostor.test:{https_server.server.port}/hook"
    with pytest.raises(httpx.ConnectError, match="certificate"):
        deliver(url, allow_loopback=True, client=client)
    assert https_server.server.received.requests == []
