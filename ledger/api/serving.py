"""How ``serve`` runs uvicorn: one config for plain HTTP and TLS 1.3-only HTTPS."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import uvicorn


class TlsConfig(uvicorn.Config):
    """uvicorn builds its SSLContext in ``load()``; raise its floor to TLS 1.3 there."""

    def load(self) -> None:
        super().load()
        if self.ssl is not None:
            self.ssl.minimum_version = ssl.TLSVersion.TLSv1_3


def server_config(
    app: Any,
    *,
    host: str,
    port: int,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    **options: Any,
) -> uvicorn.Config:
    """X-Forwarded-For is resolved by the app (LEDGER_TRUSTED_PROXIES), not by uvicorn."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("give both --tls-cert and --tls-key, or neither")
    options.setdefault("log_level", "warning")
    options.setdefault("proxy_headers", False)
    if tls_cert is None:
        return uvicorn.Config(app, host=host, port=port, **options)
    return TlsConfig(
        app,
        host=host,
        port=port,
        ssl_certfile=str(tls_cert),
        ssl_keyfile=str(tls_key),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        **options,
    )
