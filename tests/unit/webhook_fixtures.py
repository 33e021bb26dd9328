"""Shared helpers for the webhook tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "standard_webhooks.json"
KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
SECRET_A = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
NOW_TS = 1_700_000_000
NOW = datetime.fromtimestamp(NOW_TS, UTC)
BODY = b'{"type":"license.issued","license_id":"lic_1"}'


def load_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return data
