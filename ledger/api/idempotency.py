"""``Idempotency-Key`` on POST: a retried request gets the first answer, and no second event.

The first request with a key inserts a *pending* row, runs, and stores its answer (status, headers,
body); a retry with the same key and the same request (method, path, query and body, hashed) gets
that answer back with ``Idempotent-Replayed: true``. The same key with a different request is
``422 IDEMPOTENCY_KEY_REUSED``; a retry while the first is still running is
``409 IDEMPOTENCY_IN_PROGRESS``. Keys are scoped by the SHA-256 of the ``Authorization`` header
(callers without one share an anonymous scope) and live ``ttl`` seconds (24 h). Answers of 5xx,
401, 403 and 429 are not stored, so such a request can be retried for real. Secrets are never
stored: an ``api_key`` field in a stored body is replaced by ``null`` (the secret is shown once).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.api.problems import ERROR_TABLE, problem
from ledger.domain import errors as e

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
NOT_STORED = frozenset({401, 403, 429})
_SKIP_HEADERS = frozenset({b"content-length", b"date", b"server", b"retry-after"})

metadata = sa.MetaData()

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=True),  # NULL while the first request runs
    sa.Column("headers", sa.Text, nullable=True),
    sa.Column("body", sa.LargeBinary, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class IdempotencyStore:
    def __init__(self, engine: Engine, *, ttl: timedelta = timedelta(hours=24)) -> None:
        self.engine = engine
        self.ttl = ttl

    def create_tables(self) -> None:
        metadata.create_all(self.engine)

    def claim(self, scope: str, key: str, request_hash: str) -> Any:
        """None if this request now owns the key; else the existing row."""
        now = datetime.now(UTC)
        t = idempotency_keys
        where = (t.c.scope == scope) & (t.c.key == key)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(t).where(where, t.c.created_at < now - self.ttl))
            row = conn.execute(sa.select(t).where(where)).first()
            if row is not None:
                return row
            try:
                with conn.begin_nested():
                    conn.execute(
                        sa.insert(t).values(
                            scope=scope, key=key, request_hash=request_hash, created_at=now
                        )
                    )
            except sa.exc.IntegrityError:
                return conn.execute(sa.select(t).where(where)).first()
        return None

    def complete(self, scope: str, key: str, status: int, headers: list[Any], body: bytes) -> None:
        t = idempotency_keys
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.scope == scope, t.c.key == key)
                .values(status=status, headers=json.dumps(headers), body=body)
            )

    def release(self, scope: str, key: str) -> None:
        t = idempotency_keys
        with self.engine.begin() as conn:
            conn.execute(sa.delete(t).where(t.c.scope == scope, t.c.key == key))


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: None if k == "api_key" else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _stored_body(headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    ctype = dict(headers).get(b"content-type", b"")
    if b"json" in ctype and b"api_key" in body:
        try:
            return json.dumps(_redact(json.loads(body)), separators=(",", ":")).encode()
        except ValueError:
            return body
    return body


def _problem_for(error: type[e.LedgerError], detail: str) -> Response:
    status, code = ERROR_TABLE[error]
    return problem(status, code, detail)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, store: IdempotencyStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        raw_key = headers.get(HEADER)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
            await _problem_for(
                e.InvalidInputError,
                f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
            )(scope, receive, send)
            return
        body = b""
        while True:  # the body limit middleware (outside this one) bounds this
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        owner = hashlib.sha256(b"auth:" + headers.get(b"authorization", b"")).hexdigest()
        digest = hashlib.sha256()
        for part in (
            scope["method"].encode(),
            scope["path"].encode(),
            scope.get("query_string", b""),
            body,
        ):
            digest.update(len(part).to_bytes(8, "big") + part)
        request_hash = digest.hexdigest()
        row = await anyio.to_thread.run_sync(self.store.claim, owner, key, request_hash)
        if row is not None:
            await self._answer_existing(row, request_hash, scope, receive, send)
            return

        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500
        out_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        held: list[Message] = []

        async def hold(message: Message) -> None:
            # Held back until the answer is stored: a client that retries the moment it sees the
            # answer must find it stored, not pending.
            nonlocal status, out_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                out_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            held.append(message)

        try:
            await self.app(scope, replay_receive, hold)
        except BaseException:
            await anyio.to_thread.run_sync(self.store.release, owner, key)
            raise
        if status >= 500 or status in NOT_STORED:
            await anyio.to_thread.run_sync(self.store.release, owner, key)
        else:
            kept = [
                [k.decode("latin-1"), v.decode("latin-1")]
                for k, v in out_headers
                if k.lower() not in _SKIP_HEADERS and not k.lower().startswith(b"ratelimit-")
            ]
            stored = _stored_body(out_headers, b"".join(chunks))
            await anyio.to_thread.run_sync(self.store.complete, owner, key, status, kept, stored)
        for message in held:
            await send(message)

    async def _answer_existing(
        self, row: Any, request_hash: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if row.request_hash != request_hash:
            response = _problem_for(
                e.IdempotencyKeyReusedError,
                "this Idempotency-Key was used for a different request",
            )
        elif row.status is None:
            response = _problem_for(
                e.IdempotencyConflictError,
                "a request with this Idempotency-Key is still being answered; retry shortly",
            )
        else:
            response = Response(content=row.body, status_code=row.status)
            response.raw_headers = [
                *((k.encode("latin-1"), v.encode("latin-1")) for k, v in json.loads(row.headers)),
                (b"content-length", str(len(row.body)).encode()),
                (b"idempotent-replayed", b"true"),
            ]
        await response(scope, receive, send)
