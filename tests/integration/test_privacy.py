"""Encryption at rest, per-subject personal data, erasure and export, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import StoredEvent

from ledger.domain.errors import DataIntegrityError, SubjectNotFoundError
from ledger.domain.validation import Scope
from ledger.domain.values import ERASED, Actor, RequestContext, subject_id
from ledger.privacy import erase_subject, export_subject
from ledger.sealing import MAGIC
from projections.audit import AuditFilter

ACTOR = Actor(kind="api_key", id="k_test")
EMAIL = "grace.hopper@example.org"
NAME = "Grace Brewster Hopper"
IP = "203.0.113.77"
UA = "HopperAgent/9.9 (secret-ua-marker)"
PLAINTEXTS = [EMAIL, NAME, IP, UA]


def _stored(ledger: Any) -> list[Any]:
    return list(ledger.app.recorder.select_notifications(1, 10_000))


def _as_stored(n: Any, state: bytes | None = None) -> StoredEvent:
    return StoredEvent(n.originator_id, n.originator_version, n.topic, state or n.state)


def _issue(ledger: Any, org: Any) -> tuple[Any, str]:
    ctx = RequestContext.of(org.id, ACTOR, IP, UA)
    policy = ledger.app.create_policy(org.id, name="p", max_machines=5, actor=ACTOR, context=ctx)
    issued = ledger.app.issue_license(
        org.id,
        policy_id=policy.id,
        licensee_name=NAME,
        licensee_email=EMAIL,
        actor=ACTOR,
        context=ctx,
    )
    ledger.app.activate_machine(org.id, issued.license.id, "fp-1", actor=ACTOR, context=ctx)
    return issued.license, issued.key


def _raw_dump(ledger: Any) -> bytes:
    """Every byte at rest: the SQLite files (incl. -wal), or every PostgreSQL table as text."""
    settings = ledger.settings
    if not settings.is_postgres:
        return b"".join(p.read_bytes() for p in Path(settings.data_dir).rglob("*") if p.is_file())
    import psycopg

    out = bytearray()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (settings.database_schema,),
        ).fetchall()
        for (table,) in tables:
            with conn.cursor().copy(
                f'COPY "{settings.database_schema}"."{table}" TO STDOUT'
            ) as copy:
                for chunk in copy:
                    out += bytes(chunk)
    return bytes(out)


def _contains(dump: bytes, text: str) -> bool:
    return text.encode() in dump or text.encode("utf-16-le") in dump


# --------------------------------------------------------------------------- encryption at rest


def test_stored_events_are_sealed_and_hold_no_personal_plaintext(ledger: Any, org: Any) -> None:
    _issue(ledger, org)
    stored = _stored(ledger)
    assert stored and all(bytes(n.state)[:1] == bytes([MAGIC]) for n in stored)
    for n in stored:
        assert all(p.encode() not in bytes(n.state) for p in PLAINTEXTS)
    lic = ledger.app.get_license(
        org.id, next(n.originator_id for n in stored if n.topic.endswith("License.Issued"))
    )
    assert lic.licensee_email.value == EMAIL and lic.licensee_name.value == NAME


def test_swapping_two_ciphertexts_of_one_org_fails_loudly(ledger: Any, org: Any) -> None:
    _issue(ledger, org)
    a, b = [n for n in _stored(ledger) if str(n.originator_id) != str(org.id)][:2]
    for target, source in ((a, b), (b, a)):
        with pytest.raises(DataIntegrityError):
            ledger.app.mapper.to_domain_event(_as_stored(target, bytes(source.state)))


def test_swapping_ciphertexts_across_orgs_fails_loudly(ledger: Any, org: Any) -> None:
    other = ledger.app.create_organization("Other", ACTOR, RequestContext())
    _issue(ledger, org)
    _issue(ledger, other)
    stored = _stored(ledger)
    mine = next(
        n for n in stored if bytes(n.state)[1:17] == org.id.bytes and n.originator_id != org.id
    )
    theirs = next(
        n for n in stored if bytes(n.state)[1:17] == other.id.bytes and n.topic == mine.topic
    )
    with pytest.raises(DataIntegrityError):
        ledger.app.mapper.to_domain_event(_as_stored(mine, bytes(theirs.state)))
    # Relabelling the cleartext org header is caught too.
    forged = bytes([MAGIC]) + other.id.bytes + bytes(mine.state)[17:]
    with pytest.raises(DataIntegrityError):
        ledger.app.mapper.to_domain_event(_as_stored(mine, forged))


def test_a_swap_in_the_database_fails_on_read(ledger: Any, org: Any) -> None:
    lic, _ = _issue(ledger, org)
    stored = [n for n in _stored(ledger) if n.originator_id == lic.id]
    table = ledger.app.recorder.events_table_name
    if ledger.settings.is_postgres:
        import psycopg

        with psycopg.connect(ledger.settings.database_url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{ledger.settings.database_schema}"')
            conn.execute(
                f"UPDATE {table} SET state = %s "
                "WHERE originator_id = %s AND originator_version = 1",
                (bytes(stored[1].state), lic.id),
            )
    else:
        import sqlite3

        with sqlite3.connect(Path(ledger.settings.data_dir) / "events.db") as conn:
            conn.execute(
                f"UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = 1",
                (bytes(stored[1].state), lic.id.hex),
            )
    with pytest.raises(DataIntegrityError):
        ledger.app.repository.get(lic.id)


def test_the_validation_read_model_holds_no_personal_data(ledger: Any, org: Any) -> None:
    _issue(ledger, org)
    ledger.runner.catch_up()
    from projections.licenses import metadata

    with ledger.reader.connect() as conn:
        text = "".join(
            repr(row) for t in metadata.sorted_tables for row in conn.execute(sa.select(t))
        )
    assert all(p not in text for p in PLAINTEXTS)


# --------------------------------------------------------------------------- erasure


def test_erasure_shreds_the_subject_and_keeps_the_ledger_valid(ledger: Any, org: Any) -> None:
    lic, key = _issue(ledger, org)
    ledger.runner.catch_up()
    licensee = subject_id(org.id, "licensee", EMAIL)
    actor = RequestContext.of(org.id, ACTOR, IP, UA).ip.subject  # type: ignore[union-attr]
    before = ledger.stream.leaf_hashes(org.id, 10_000)

    exported = export_subject(ledger, org.id, licensee)
    assert {r["value"] for r in exported["personal_data"]} == {EMAIL, NAME}
    assert exported["status"] == "active"
    dump = _raw_dump(ledger)
    assert _contains(dump, IP)  # the audit view holds request IPs in clear until erasure

    erase_subject(ledger, org.id, licensee, Actor(kind="cli", id="dpo"))
    again = erase_subject(ledger, org.id, licensee, Actor(kind="cli", id="dpo"))
    assert again["already_erased"] is True
    erase_subject(ledger, org.id, actor, Actor(kind="cli", id="dpo"))
    ledger.runner.catch_up()

    dump = _raw_dump(ledger)
    for text in PLAINTEXTS:
        assert not _contains(dump, text), text

    replayed = ledger.app.get_license(org.id, lic.id)
    assert replayed.licensee_email.value == ERASED and replayed.licensee_name.value == ERASED
    assert ledger.validator.check(org.id, key, Scope(), ledger.app.clock()).valid
    assert ledger.stream.leaf_hashes(org.id, len(before)) == before  # the log still verifies
    rows = ledger.audit.page(org.id, AuditFilter())
    assert any(r["action"] == "subject.erased" for r in rows)
    assert all(r["ip"] in (None, ERASED) and r["user_agent"] in (None, ERASED) for r in rows)
    for name in ("audit", "stream"):
        ledger.runner.rebuild(name)
    assert ledger.stream.leaf_hashes(org.id, len(before)) == before
    after = export_subject(ledger, org.id, licensee)
    assert after["status"] == "erased" and after["key_ids"] == []
    assert {r["value"] for r in after["personal_data"]} == {ERASED}


def test_the_fence_keeps_new_personal_data_of_an_erased_subject_out(ledger: Any, org: Any) -> None:
    _issue(ledger, org)
    licensee = subject_id(org.id, "licensee", EMAIL)
    erase_subject(ledger, org.id, licensee, Actor(kind="cli", id="dpo"))
    policy_id = ledger.app.get_license(
        org.id, next(n.originator_id for n in _stored(ledger) if n.topic.endswith("Issued"))
    ).policy_id
    issued = ledger.app.issue_license(
        org.id, policy_id=policy_id, licensee_email=EMAIL, actor=ACTOR, context=RequestContext()
    )
    assert ledger.app.get_license(org.id, issued.license.id).licensee_email.value == ERASED
    assert ledger.keystore.subject_info(licensee)["key_ids"] == []


def test_erasing_an_unknown_or_foreign_subject_is_not_found(ledger: Any, org: Any) -> None:
    _issue(ledger, org)
    other = ledger.app.create_organization("Other", ACTOR, RequestContext())
    with pytest.raises(SubjectNotFoundError):
        erase_subject(ledger, org.id, str(uuid.uuid4()), ACTOR)
    with pytest.raises(SubjectNotFoundError):
        erase_subject(ledger, other.id, subject_id(org.id, "licensee", EMAIL), ACTOR)


def test_subject_endpoints(api: Any, ledger: Any) -> None:
    org_id = uuid.UUID(api.org_id)
    policy = api.post("/v1/policies", json={"name": "p"}).json()
    r = api.post("/v1/licenses", json={"policy_id": policy["id"], "licensee_email": EMAIL})
    assert r.status_code in (200, 201), r.text
    subject = subject_id(org_id, "licensee", EMAIL)
    exported = api.get(f"/v1/subjects/{subject}/export")
    assert exported.status_code == 200 and EMAIL in exported.text
    erased = api.post(f"/v1/subjects/{subject}/erase")
    assert erased.status_code == 200 and erased.json()["erased"] is True
    assert api.post(f"/v1/subjects/{subject}/erase").json()["already_erased"] is True
    assert EMAIL not in api.get(f"/v1/subjects/{subject}/export").text
    missing = api.post(f"/v1/subjects/{uuid.uuid4()}/erase")
    assert missing.status_code == 404
    assert missing.json()["code"] == "SUBJECT_NOT_FOUND"
    assert missing.headers["content-type"] == "application/problem+json"


# --------------------------------------------------------------------------- keys


def test_rotate_kek_rewraps_everything_while_a_process_keeps_running(
    ledger: Any, org: Any, make_settings: Any
) -> None:
    from ledger.bootstrap import bootstrap, kek_file
    from ledger.crypto.kek import add_kek_to_file, drop_keks_from_file

    lic, _ = _issue(ledger, org)
    old = ledger.keystore.keks.active.kek_id
    other = bootstrap(make_settings())
    try:
        new = add_kek_to_file(kek_file(other.settings))
        other.keystore.rewrap_all()
        other.keyring.reseal_all()
        other.auditlog.signer.reseal_all()
        assert set(other.keystore.kek_ids_in_use()) == {new}
        assert drop_keks_from_file(kek_file(other.settings), {new}) == [old]
    finally:
        other.close()
    # The running process picks the new KEK up: new subjects are wrapped under it.
    _issue(ledger, ledger.app.create_organization("Later", ACTOR, RequestContext()))
    assert set(ledger.keystore.kek_ids_in_use()) == {new}
    fresh = bootstrap(make_settings())
    try:
        assert fresh.app.get_license(org.id, lic.id).licensee_email.value == EMAIL
        fresh.keyring.signing_key(lic.key_claims["kid"])
    finally:
        fresh.close()


def test_data_keys_rotate_before_their_encryption_limit(ledger: Any) -> None:
    from ledger.crypto.keystore import EVENTS, KeyStore, data_keys

    store = KeyStore(
        ledger.writer, ledger.keystore.keks, max_encryptions=5, lease=2, reader=ledger.reader
    )
    blobs = [store.seal_event(f"m{i}".encode(), b"aad") for i in range(12)]
    assert [store.open_event(b, b"aad") for b in blobs] == [f"m{i}".encode() for i in range(12)]
    with ledger.reader.connect() as conn:
        rows = conn.execute(sa.select(data_keys).where(data_keys.c.owner == EVENTS)).all()
    assert len({b[1:9] for b in blobs}) >= 3
    assert all(r.reserved <= 5 for r in rows)


def test_sealed_blobs_keep_the_aead_format(ledger: Any) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ledger.crypto import aead
    from ledger.crypto.keystore import open_with, seal_with

    key = bytes(range(32))
    blob = seal_with(AESGCM(key), b"12345678", b"hello", b"ctx")
    assert aead.open_(key, blob, b"ctx") == b"hello"
    with pytest.raises(aead.DecryptionError):
        open_with(AESGCM(key), blob, b"other")
