"""The tenant session on SQLite and PostgreSQL: the ORM filter, the write refusals, and (on
PostgreSQL) row-level security holding on its own with the ORM filter switched off."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from ledger import sql
from ledger.tenancy import CrossTenantWriteError, TenantSession, columns, tenant_tables
from projections.licenses import (
    LicenseKeyRow,
    LicenseRow,
    PolicyRow,
    license_keys,
    licenses,
    policies,
)

A, B = str(uuid.uuid4()), str(uuid.uuid4())


def _seed(conn: sa.Connection, org: str, n: int) -> None:
    now = datetime.now(UTC)
    for i in range(n):
        lid, pid = str(uuid.uuid4()), str(uuid.uuid4())
        conn.execute(
            sa.insert(policies).values(
                policy_id=pid,
                org_id=org,
                name=f"p{i}",
                expiration_strategy="RESTRICT_ACCESS",
                grace_period_seconds=0,
                entitlements="[]",
                created_at=now,
            )
        )
        conn.execute(
            sa.insert(licenses).values(
                license_id=lid,
                org_id=org,
                policy_id=pid,
                revoked=False,
                suspended=False,
                grace_period_seconds=0,
                expiration_strategy="RESTRICT_ACCESS",
                machines="{}",
                entitlements="[]",
                created_at=now,
                updated_at=now,
                version=1,
            )
        )
        conn.execute(
            sa.insert(license_keys).values(
                key_hash=f"{org[:8]}{i:056d}", org_id=org, license_id=lid
            )
        )


@pytest.fixture
def seeded(ledger: Any) -> Any:
    with ledger.writer.begin() as conn:
        _seed(conn, A, 3)
        _seed(conn, B, 2)
    return ledger


def _by_org(ledger: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every license row, grouped by org, read as the owner (across orgs)."""
    with ledger.writer.connect() as conn:
        rows = conn.execute(sa.select(licenses).order_by(licenses.c.license_id)).all()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        out.setdefault(r.org_id, []).append(tuple(r))
    return out


@pytest.fixture
def orm_filter_off() -> Iterator[None]:
    TenantSession.orm_filter = False
    try:
        yield
    finally:
        TenantSession.orm_filter = True


def test_queries_that_name_no_org_return_only_the_session_orgs_rows(seeded: Any) -> None:
    with TenantSession(seeded.reader, A) as s:
        assert {r.org_id for r in s.execute(sa.select(*columns(LicenseRow)))} == {A}
        assert len(s.execute(sa.select(LicenseRow)).scalars().all()) == 3
        assert s.execute(sa.select(sa.func.count(PolicyRow.policy_id))).scalar_one() == 3
        joined = s.execute(
            sa.select(LicenseRow.license_id, LicenseKeyRow.key_hash).join(
                LicenseKeyRow, LicenseKeyRow.license_id == LicenseRow.license_id
            )
        ).all()
        assert len(joined) == 3 and all(k.startswith(A[:8]) for _, k in joined)
        assert s.execute(sa.select(LicenseRow).where(LicenseRow.org_id == B)).first() is None


def test_views_answer_nothing_about_another_orgs_rows(seeded: Any) -> None:
    b_license = _by_org(seeded)[B][0][0]
    view = seeded.licenses
    assert view.get(uuid.UUID(A), uuid.UUID(b_license)) is None
    assert view.get(uuid.UUID(B), uuid.UUID(b_license)) is not None
    assert view.license_for_key(uuid.UUID(A), f"{B[:8]}{0:056d}") is None
    assert view.lookup_key(uuid.UUID(A), f"{B[:8]}{0:056d}") is None
    assert {p["org_id"] for p in view.list_policies(uuid.UUID(B))} == {B}


def test_flushing_a_row_of_another_org_is_refused(seeded: Any) -> None:
    with TenantSession(seeded.writer, A, row_security=False) as s:
        row = PolicyRow()
        for key, value in dict(
            policy_id=str(uuid.uuid4()),
            org_id=B,
            name="x",
            expiration_strategy="RESTRICT_ACCESS",
            grace_period_seconds=0,
            entitlements="[]",
            created_at=datetime.now(UTC),
        ).items():
            setattr(row, key, value)
        s.add(row)
        with pytest.raises(CrossTenantWriteError):
            s.flush()
        s.rollback()
        own = s.execute(sa.select(LicenseRow)).scalars().first()
        assert own is not None
        own.org_id = B  # moving a row to another org is a write for that org
        with pytest.raises(CrossTenantWriteError):
            s.flush()
        s.rollback()
        s.delete(own)
        own.org_id = B
        with pytest.raises(CrossTenantWriteError):
            s.flush()
    assert _by_org(seeded)[A] and len(_by_org(seeded)[B]) == 2


def test_bulk_statements_cannot_write_another_orgs_rows(seeded: Any) -> None:
    with TenantSession(seeded.writer, A, row_security=False) as s:
        with pytest.raises(CrossTenantWriteError):
            row = {"key_hash": "f" * 64, "org_id": B, "license_id": "x"}
            s.execute(sa.insert(LicenseKeyRow), [row])
        with pytest.raises(CrossTenantWriteError):
            s.execute(sa.insert(LicenseKeyRow).values(key_hash="f" * 64, org_id=B, license_id="x"))
        with pytest.raises(CrossTenantWriteError):
            s.execute(sa.insert(LicenseKeyRow).values(key_hash="f" * 64, license_id="x"))
        with pytest.raises(CrossTenantWriteError):
            s.execute(sa.update(LicenseRow).values(org_id=B))


def test_update_and_delete_statements_touch_only_the_session_orgs_rows(seeded: Any) -> None:
    before = _by_org(seeded)
    with TenantSession(seeded.writer, A, row_security=False) as s, s.begin():
        updated = s.execute(sa.update(LicenseRow).values(suspended=True))
        assert updated.rowcount == 3
        deleted = s.execute(sa.delete(LicenseKeyRow))
        assert deleted.rowcount == 3
    after = _by_org(seeded)
    assert after[B] == before[B]
    assert all(r.suspended for r in _rows(seeded, A))
    with seeded.writer.connect() as conn:
        orgs = set(conn.execute(sa.select(license_keys.c.org_id)).scalars())
    assert orgs == {B}


def _rows(ledger: Any, org: str) -> list[Any]:
    with ledger.writer.connect() as conn:
        return conn.execute(sa.select(licenses).where(licenses.c.org_id == org)).all()


def test_every_read_model_table_with_an_org_is_tenant_scoped(ledger: Any) -> None:
    from ledger.keyring import metadata as keyring_md
    from projections.runtime import metadata as runtime_md

    global_tables = {"projection_tracking", "signing_keys"}
    mds = [keyring_md, runtime_md, *(p.metadata for p in ledger.runner.projections)]
    every = {t.name: t for md in mds for t in md.tables.values()}
    assert set(every) - global_tables == set(tenant_tables())
    assert all("org_id" in every[name].c for name in tenant_tables())


# ------------------------------------------------------------------- the second layer (PostgreSQL)


@pytest.fixture
def pg_seeded(seeded: Any) -> Any:
    if not seeded.settings.is_postgres:
        pytest.skip("row-level security is PostgreSQL's")
    return seeded


def test_row_level_security_is_enabled_and_forced_on_every_tenant_table(pg_seeded: Any) -> None:
    with pg_seeded.writer.connect() as conn:
        assert all(sql.row_security_of(conn, t) == (True, True) for t in tenant_tables())


@pytest.mark.usefixtures("orm_filter_off")
def test_with_the_orm_filter_off_row_level_security_alone_hides_other_orgs(pg_seeded: Any) -> None:
    with TenantSession(pg_seeded.reader, A) as s:
        assert sql.current_role(s.connection()) == sql.APP_ROLE
        assert {r.org_id for r in s.execute(sa.select(*columns(LicenseRow)))} == {A}
        assert s.execute(sa.select(LicenseRow).where(LicenseRow.org_id == B)).first() is None
        assert s.execute(sa.select(sa.func.count()).select_from(PolicyRow)).scalar_one() == 3
    view = pg_seeded.licenses
    assert {r["org_id"] for r in view.list(uuid.UUID(B))} == {B}
    assert view.get(uuid.UUID(A), uuid.UUID(_by_org(pg_seeded)[B][0][0])) is None


@pytest.mark.usefixtures("orm_filter_off")
def test_the_application_role_may_not_write(pg_seeded: Any) -> None:
    before = _by_org(pg_seeded)
    with (
        TenantSession(pg_seeded.writer, A) as s,
        pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
    ):
        s.execute(sa.update(LicenseRow).values(suspended=True))
    assert _by_org(pg_seeded) == before


@pytest.mark.usefixtures("orm_filter_off")
def test_without_the_orm_filter_sqlite_has_no_second_layer(seeded: Any) -> None:
    """The counterpart of the PostgreSQL test above: it proves these tests can see a leak."""
    if seeded.settings.is_postgres:
        pytest.skip("SQLite only")
    with TenantSession(seeded.reader, A) as s:
        assert {r.org_id for r in s.execute(sa.select(*columns(LicenseRow)))} == {A, B}


def test_bootstrapping_again_keeps_row_level_security_idempotent(pg_seeded: Any) -> None:
    from ledger.tenancy import install_row_security

    install_row_security(pg_seeded.writer)
    with TenantSession(pg_seeded.reader, B) as s:
        assert len(s.execute(sa.select(*columns(LicenseRow))).all()) == 2
