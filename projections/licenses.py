"""The validation read model: per license, what validation needs, and nothing personal.

Rows: organizations, policies, licenses (with machines and entitlements as JSON) and the SHA-256
of every key a license was issued (never the key). ``validate-key`` reads one joined row.
"""

from __future__ import annotations

import builtins
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped

from ledger.domain.license import License
from ledger.domain.organization import Organization, Policy
from ledger.domain.validation import ExpirationStrategy, LicenseState
from ledger.tenancy import TenantScoped, TenantSession, columns, map_tenant_table
from projections.runtime import Projection, handles

metadata = sa.MetaData()

orgs = sa.Table(
    "org_view",
    metadata,
    sa.Column("org_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

policies = sa.Table(
    "policy_view",
    metadata,
    sa.Column("policy_id", sa.String(36), primary_key=True),
    sa.Column("org_id", sa.String(36), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("duration_seconds", sa.BigInteger),
    sa.Column("max_machines", sa.Integer),
    sa.Column("expiration_strategy", sa.String(32), nullable=False),
    sa.Column("grace_period_seconds", sa.Integer, nullable=False),
    sa.Column("entitlements", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

licenses = sa.Table(
    "license_view",
    metadata,
    sa.Column("license_id", sa.String(36), primary_key=True),
    sa.Column("org_id", sa.String(36), nullable=False),
    sa.Column("policy_id", sa.String(36)),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("suspended", sa.Boolean, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("grace_period_seconds", sa.Integer, nullable=False),
    sa.Column("expiration_strategy", sa.String(32), nullable=False),
    sa.Column("max_machines", sa.Integer),
    sa.Column("machines", sa.Text, nullable=False),
    sa.Column("entitlements", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_check_in", sa.DateTime(timezone=True)),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_license_view_org_created", "org_id", "created_at", "license_id"),
)

license_keys = sa.Table(
    "license_key_view",
    metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(36), nullable=False),
    sa.Column("license_id", sa.String(36), nullable=False, index=True),
)


class OrgRow(TenantScoped):
    org_id: Mapped[str]
    name: Mapped[str]
    created_at: Mapped[datetime]


class PolicyRow(TenantScoped):
    policy_id: Mapped[str]
    org_id: Mapped[str]
    name: Mapped[str]
    duration_seconds: Mapped[int | None]
    max_machines: Mapped[int | None]
    expiration_strategy: Mapped[str]
    grace_period_seconds: Mapped[int]
    entitlements: Mapped[str]
    created_at: Mapped[datetime]


class LicenseRow(TenantScoped):
    license_id: Mapped[str]
    org_id: Mapped[str]
    policy_id: Mapped[str | None]
    revoked: Mapped[bool]
    suspended: Mapped[bool]
    expires_at: Mapped[datetime | None]
    grace_period_seconds: Mapped[int]
    expiration_strategy: Mapped[str]
    max_machines: Mapped[int | None]
    machines: Mapped[str]
    entitlements: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_check_in: Mapped[datetime | None]
    version: Mapped[int]


class LicenseKeyRow(TenantScoped):
    key_hash: Mapped[str]
    org_id: Mapped[str]
    license_id: Mapped[str]


map_tenant_table(OrgRow, orgs)
map_tenant_table(PolicyRow, policies)
map_tenant_table(LicenseRow, licenses)
map_tenant_table(LicenseKeyRow, license_keys)


def _dt(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _utc(value: datetime | None) -> datetime | None:
    """An aware time as UTC, for writing: SQLite keeps a DateTime's wall time and drops its zone."""
    return None if value is None else value.astimezone(UTC)


class LicenseProjection(Projection):
    name = "licenses"
    metadata = metadata

    def clear(self, conn: Connection) -> None:
        for table in reversed(metadata.sorted_tables):
            conn.execute(sa.delete(table))

    # ------------------------------------------------------------------ handlers

    @handles(Organization.Created)
    def organization_created(self, conn: Connection, ev: Any, _n: Any) -> None:
        conn.execute(
            sa.insert(orgs).values(
                org_id=str(ev.originator_id), name=ev.name, created_at=ev.timestamp
            )
        )

    @handles(Policy.Created)
    def policy_created(self, conn: Connection, ev: Any, _n: Any) -> None:
        conn.execute(
            sa.insert(policies).values(
                policy_id=str(ev.originator_id),
                org_id=str(ev.org_id),
                name=ev.name,
                duration_seconds=ev.duration_seconds,
                max_machines=ev.max_machines,
                expiration_strategy=ev.expiration_strategy,
                grace_period_seconds=ev.grace_period_seconds,
                entitlements=json.dumps(sorted(ev.entitlements)),
                created_at=ev.timestamp,
            )
        )

    @handles(License.Issued)
    def license_issued(self, conn: Connection, ev: Any, _n: Any) -> None:
        lid = str(ev.originator_id)
        conn.execute(
            sa.insert(licenses).values(
                license_id=lid,
                org_id=str(ev.org_id),
                policy_id=str(ev.policy_id) if ev.policy_id else None,
                revoked=False,
                suspended=False,
                expires_at=_utc(ev.expires_at),
                grace_period_seconds=ev.grace_period_seconds,
                expiration_strategy=ev.expiration_strategy,
                max_machines=ev.max_machines,
                machines="{}",
                entitlements=json.dumps(sorted(ev.entitlements)),
                created_at=ev.timestamp,
                updated_at=ev.timestamp,
                version=ev.originator_version,
            )
        )
        self._add_key(conn, ev, lid)

    def _add_key(self, conn: Connection, ev: Any, lid: str) -> None:
        exists = conn.execute(
            sa.select(license_keys.c.key_hash).where(license_keys.c.key_hash == ev.key_hash)
        ).first()
        if exists is None:
            conn.execute(
                sa.insert(license_keys).values(
                    key_hash=ev.key_hash, org_id=str(ev.org_id), license_id=lid
                )
            )

    def _update(self, conn: Connection, ev: Any, **values: Any) -> None:
        conn.execute(
            sa.update(licenses)
            .where(licenses.c.license_id == str(ev.originator_id))
            .values(updated_at=ev.timestamp, version=ev.originator_version, **values)
        )

    def _machines(self, conn: Connection, ev: Any) -> dict[str, Any]:
        row = conn.execute(
            sa.select(licenses.c.machines).where(licenses.c.license_id == str(ev.originator_id))
        ).first()
        return dict(json.loads(row.machines)) if row is not None else {}

    @handles(License.MachineActivated)
    def machine_activated(self, conn: Connection, ev: Any, _n: Any) -> None:
        machines = self._machines(conn, ev)
        machines[ev.fingerprint] = {"name": ev.name, "activated_at": ev.timestamp.isoformat()}
        self._update(conn, ev, machines=json.dumps(machines, sort_keys=True))

    @handles(License.MachineDeactivated)
    def machine_deactivated(self, conn: Connection, ev: Any, _n: Any) -> None:
        machines = self._machines(conn, ev)
        machines.pop(ev.fingerprint, None)
        self._update(conn, ev, machines=json.dumps(machines, sort_keys=True))

    @handles(License.Suspended)
    def license_suspended(self, conn: Connection, ev: Any, _n: Any) -> None:
        self._update(conn, ev, suspended=True)

    @handles(License.Reinstated)
    def license_reinstated(self, conn: Connection, ev: Any, _n: Any) -> None:
        self._update(conn, ev, suspended=False)

    @handles(License.Revoked)
    def license_revoked(self, conn: Connection, ev: Any, _n: Any) -> None:
        self._update(conn, ev, revoked=True)

    @handles(License.Renewed)
    def license_renewed(self, conn: Connection, ev: Any, _n: Any) -> None:
        self._update(conn, ev, expires_at=_utc(ev.expires_at))
        self._add_key(conn, ev, str(ev.originator_id))

    @handles(License.EntitlementsChanged)
    def entitlements_changed(self, conn: Connection, ev: Any, _n: Any) -> None:
        self._update(conn, ev, entitlements=json.dumps(sorted(ev.entitlements)))
        self._add_key(conn, ev, str(ev.originator_id))

    @handles(License.CheckedIn)
    def license_checked_in(self, conn: Connection, ev: Any, _n: Any) -> None:
        values: dict[str, Any] = {"last_check_in": ev.timestamp}
        if ev.fingerprint is not None:
            machines = self._machines(conn, ev)
            if ev.fingerprint in machines:
                machines[ev.fingerprint]["last_check_in"] = ev.timestamp.isoformat()
                values["machines"] = json.dumps(machines, sort_keys=True)
        self._update(conn, ev, **values)


def row_to_state(row: Any) -> LicenseState:
    return LicenseState(
        revoked=bool(row.revoked),
        suspended=bool(row.suspended),
        expires_at=_dt(row.expires_at),
        grace_period=timedelta(seconds=row.grace_period_seconds),
        expiration_strategy=ExpirationStrategy(row.expiration_strategy),
        max_machines=row.max_machines,
        fingerprints=frozenset(json.loads(row.machines)),
        entitlements=frozenset(json.loads(row.entitlements)),
    )


def row_to_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.license_id,
        "org_id": row.org_id,
        "policy_id": row.policy_id,
        "revoked": bool(row.revoked),
        "suspended": bool(row.suspended),
        "expires_at": _dt(row.expires_at),
        "max_machines": row.max_machines,
        "machines": json.loads(row.machines),
        "entitlements": json.loads(row.entitlements),
        "created_at": _dt(row.created_at),
        "updated_at": _dt(row.updated_at),
        "last_check_in": _dt(row.last_check_in),
        "version": row.version,
        "state": row_to_state(row),
    }


# The validation hot path's statements, built once (the tenant session adds the org filter).
_LOOKUP_KEY = (
    sa.select(*columns(LicenseRow))
    .join(LicenseKeyRow, LicenseKeyRow.license_id == LicenseRow.license_id)
    .where(LicenseKeyRow.key_hash == sa.bindparam("key_hash"))
)
_ORG_EXISTS = sa.select(OrgRow.org_id)


class LicenseView:
    """Queries over the validation read model, each in a session bound to one organization
    (``ledger.tenancy.TenantSession`` adds the org filter); only ``list_orgs`` spans orgs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def lookup_key(self, org_id: UUID, key_hash: str) -> tuple[str, LicenseState] | None:
        with TenantSession(self.engine, org_id) as session:
            row = session.execute(_LOOKUP_KEY, {"key_hash": key_hash}).first()
        return None if row is None else (row.license_id, row_to_state(row))

    def license_for_key(self, org_id: UUID, key_hash: str) -> str | None:
        stmt = sa.select(LicenseKeyRow.license_id).where(LicenseKeyRow.key_hash == key_hash)
        with TenantSession(self.engine, org_id) as session:
            row = session.execute(stmt).first()
        return None if row is None else str(row.license_id)

    def org_exists(self, org_id: UUID) -> bool:
        with TenantSession(self.engine, org_id) as session:
            row = session.execute(_ORG_EXISTS).first()
        return row is not None

    def get(self, org_id: UUID, license_id: UUID) -> dict[str, Any] | None:
        stmt = sa.select(*columns(LicenseRow)).where(LicenseRow.license_id == str(license_id))
        with TenantSession(self.engine, org_id) as session:
            row = session.execute(stmt).first()
        return None if row is None else row_to_dict(row)

    def list(
        self, org_id: UUID, *, after: tuple[datetime, str] | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        stmt = sa.select(*columns(LicenseRow))
        if after is not None:
            at, lid = after
            stmt = stmt.where(
                sa.or_(
                    LicenseRow.created_at > at,
                    sa.and_(LicenseRow.created_at == at, LicenseRow.license_id > lid),
                )
            )
        stmt = stmt.order_by(LicenseRow.created_at, LicenseRow.license_id).limit(limit)
        with TenantSession(self.engine, org_id) as session:
            return [row_to_dict(r) for r in session.execute(stmt).all()]

    def list_policies(self, org_id: UUID) -> builtins.list[dict[str, Any]]:
        stmt = sa.select(*columns(PolicyRow)).order_by(PolicyRow.created_at)
        with TenantSession(self.engine, org_id) as session:
            rows = session.execute(stmt).all()
        return [
            {
                "id": r.policy_id,
                "org_id": r.org_id,
                "name": r.name,
                "duration_seconds": r.duration_seconds,
                "max_machines": r.max_machines,
                "expiration_strategy": r.expiration_strategy,
                "grace_period_seconds": r.grace_period_seconds,
                "entitlements": json.loads(r.entitlements),
                "created_at": _dt(r.created_at),
            }
            for r in rows
        ]

    def list_orgs(self) -> builtins.list[dict[str, Any]]:
        """Every organization: for the operator's CLI, deliberately across orgs."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(orgs).order_by(orgs.c.created_at)).all()
        return [{"id": r.org_id, "name": r.name, "created_at": _dt(r.created_at)} for r in rows]
