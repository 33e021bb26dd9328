"""Data-subject rights: erasure (crypto-shredding) and export (portability, disclosure).

Erasure, in order:

1. fence the subject and destroy its keys (``KeyStore.erase_subject``) — from here on its personal
   values read back as ``[erased]`` everywhere, and new ones are stored as erased;
2. append ``Subject.Erased`` (no personal data) to the ledger;
3. scrub the read models: audit rows of the subject get ``[erased]`` for IP and user agent (the
   audit projection does the same when it meets ``Subject.Erased``, so rebuilds agree);
4. on SQLite, checkpoint and truncate the write-ahead log of the store database, whose old pages
   would otherwise still hold the scrubbed values (deleted content is zeroed: ``secure_delete``).

The ledger itself is not rewritten: the sealed events keep the subject's values encrypted under a
key that no longer exists, so the Merkle log over the stored form still verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import StoredEvent

from ledger.domain.errors import SubjectNotFoundError
from ledger.domain.values import ERASED, Actor, PersonalData, RequestContext
from ledger.events import event_id, event_type_from_topic
from ledger.sealing import MAGIC

__all__ = ["erase_subject", "export_subject", "personal_fields", "scrub_audit_rows"]


def personal_fields(value: Any, path: str = "") -> Iterator[tuple[str, PersonalData]]:
    """Every personal value inside an event attribute, with its dotted path."""
    if isinstance(value, PersonalData):
        yield path, value
    elif isinstance(value, Actor):
        if value.email is not None:
            yield f"{path}.email", value.email
    elif isinstance(value, RequestContext):
        for name in ("ip", "user_agent"):
            pd = getattr(value, name)
            if pd is not None:
                yield f"{path}.{name}", pd
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from personal_fields(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from personal_fields(v, f"{path}[{i}]")


def scrub_audit_rows(conn: Any, subject: str) -> int:
    from projections.audit import audit

    result = conn.execute(
        sa.update(audit)
        .where(audit.c.actor_subject == subject)
        .values(
            ip=sa.case((audit.c.ip.is_(None), None), else_=ERASED),
            user_agent=sa.case((audit.c.user_agent.is_(None), None), else_=ERASED),
        )
    )
    return int(result.rowcount or 0)


def _subject_in_org(ledger: Any, org_id: UUID, subject: str) -> dict[str, Any]:
    info: dict[str, Any] | None = (
        ledger.keystore.subject_info(subject) if ledger.keystore is not None else None
    )
    if info is None or info["org_id"] != str(org_id):
        raise SubjectNotFoundError(f"no data subject {subject} in this organization")
    return info


def erase_subject(ledger: Any, org_id: UUID, subject: str, actor: Actor) -> dict[str, Any]:
    """Erase a subject of ``org_id``; erasing again is harmless and says so."""
    _subject_in_org(ledger, org_id, subject)
    newly = ledger.keystore.erase_subject(subject, str(org_id))
    record = ledger.app.record_subject_erased(org_id, subject, actor=actor)
    with ledger.writer.begin() as conn:
        scrubbed = scrub_audit_rows(conn, subject)
    if not ledger.settings.is_postgres:
        _truncate_wal(ledger.settings.data_dir / "store.db")
    return {
        "subject_id": subject,
        "org_id": str(org_id),
        "erased": True,
        "already_erased": not newly,
        "erased_at": record.erased_at,
        "event_id": str(event_id(record.id, 1)),
        "audit_rows_scrubbed": scrubbed,
    }


def _truncate_wal(path: Any) -> None:
    """Copy the WAL into the database and empty it (outside any transaction)."""
    from ledger import sql

    sql.sqlite_truncate_wal(path)


def export_subject(ledger: Any, org_id: UUID, subject: str) -> dict[str, Any]:
    """Everything the ledger holds about a subject of ``org_id``, as plain JSON-able data."""
    info = _subject_in_org(ledger, org_id, subject)
    org_header = org_id.bytes
    found: list[dict[str, Any]] = []
    start, chunk = 1, 1000
    recorder = ledger.app.recorder
    while True:
        page = recorder.select_notifications(start, chunk)
        for n in page:
            state = bytes(n.state)
            if state[:1] == bytes([MAGIC]) and state[1:17] != org_header:
                continue  # another org's event: not even decrypted
            stored = StoredEvent(n.originator_id, n.originator_version, n.topic, n.state)
            event = ledger.app.mapper.to_domain_event(stored)
            if str(getattr(event, "org_id", event.originator_id)) != str(org_id):
                continue
            for name, value in vars(event).items():
                for path, pd in personal_fields(value, name):
                    if pd.subject == subject:
                        found.append(
                            {
                                "event_id": str(event_id(n.originator_id, n.originator_version)),
                                "type": event_type_from_topic(n.topic),
                                "aggregate_id": str(n.originator_id),
                                "version": n.originator_version,
                                "occurred_at": event.timestamp.isoformat(),
                                "field": path,
                                "value": pd.value,
                            }
                        )
        if len(page) < chunk:
            break
        start = page[-1].id + 1
    from projections.audit import audit

    with ledger.reader.connect() as conn:
        rows = conn.execute(
            sa.select(audit.c.event_id, audit.c.action, audit.c.ip, audit.c.user_agent)
            .where(audit.c.actor_subject == subject, audit.c.org_id == str(org_id))
            .order_by(audit.c.id)
        ).all()
    return {
        "subject_id": subject,
        "org_id": str(org_id),
        "status": "erased" if info["erased_at"] is not None else "active",
        "erased_at": info["erased_at"].isoformat() if info["erased_at"] is not None else None,
        "key_ids": info["key_ids"],
        "personal_data": found,
        "audit_view": [
            {"event_id": r.event_id, "action": r.action, "ip": r.ip, "user_agent": r.user_agent}
            for r in rows
        ],
        "format": "license-ledger/subject-export/v1",
    }
