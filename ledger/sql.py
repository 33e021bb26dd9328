"""Every piece of raw SQL in the service, in one place.

Everything else speaks SQLAlchemy expressions (Core for the projections' writes, the ORM through
``ledger.tenancy.TenantSession`` for reads). Raw SQL is what a reviewer must read twice: SQLite
pragmas and transaction modes, PostgreSQL's advisory lock, LISTEN, and the row-level security DDL
and session settings of the second tenancy layer. ``tests/unit/test_raw_sql.py`` fails if raw SQL
appears in any other module of ``ledger`` or ``projections``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: The non-owner role tenant sessions switch to on PostgreSQL; row-level security applies to it.
APP_ROLE = "ledger_app"  # also spelled out in _CREATE_ROLE
#: The transaction-local setting that carries the current org to the row-level security policies.
ORG_SETTING = "ledger.org_id"

_SCHEMA_LOCK_KEY = 0x4C4C5343  # "LLSC"

# ---------------------------------------------------------------------------------------- SQLite


def sqlite_pragmas(dbapi_conn: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA secure_delete=ON")  # erased values must not linger in free pages
    cur.close()


def sqlite_begin(conn: Any, *, immediate: bool) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# ------------------------------------------------------------------------------------ everywhere


def ping(conn: Connection) -> None:
    conn.execute(sa.text("SELECT 1"))


# ------------------------------------------------------------------------------------ PostgreSQL


def advisory_lock(psycopg_conn: Any) -> None:
    psycopg_conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_KEY,))


def advisory_unlock(psycopg_conn: Any) -> None:
    psycopg_conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK_KEY,))


def listen(psycopg_conn: Any, channel: str) -> None:
    from psycopg import sql

    psycopg_conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))


def enter_tenant(conn: Connection, org_id: str) -> None:
    """Run the rest of this transaction as the application role, for one org (PostgreSQL)."""
    conn.execute(
        sa.text("SELECT set_config('role', :role, true), set_config(:name, :org, true)"),
        {"role": APP_ROLE, "name": ORG_SETTING, "org": org_id},
    )


def current_role(conn: Connection) -> str:
    return str(conn.execute(sa.text("SELECT current_user")).scalar_one())


_CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_app') THEN
        CREATE ROLE ledger_app NOLOGIN NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created concurrently (roles are cluster-wide; the advisory lock is per database)
END
$$
"""


def install_row_level_security(conn: Connection, tables: list[str]) -> None:
    """The second tenancy layer: ``tables`` (each with an ``org_id`` column) readable by the
    application role only for the org set in ``ledger.org_id``; FORCE'd, so the owner is bound by
    policies too (its own policy lets the projections write every org). Idempotent, and takes no
    table lock once installed; run under ``ledger.storage.schema_lock``."""
    conn.execute(sa.text(_CREATE_ROLE))
    prep = conn.dialect.identifier_preparer
    owner = prep.quote_identifier(current_role(conn))
    conn.execute(sa.text(f"GRANT {APP_ROLE} TO {owner}"))
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    conn.execute(sa.text(f"GRANT USAGE ON SCHEMA {prep.quote_identifier(schema)} TO {APP_ROLE}"))
    for name in tables:
        t = prep.quote_identifier(name)
        conn.execute(sa.text(f"GRANT SELECT ON {t} TO {APP_ROLE}"))
        have = set(
            conn.execute(
                sa.text(
                    "SELECT policyname FROM pg_policies "
                    "WHERE schemaname = current_schema() AND tablename = :t"
                ),
                {"t": name},
            ).scalars()
        )
        if "ledger_owner" not in have:  # before FORCE, so the projections never lose access
            conn.execute(
                sa.text(
                    f"CREATE POLICY ledger_owner ON {t} TO {owner} USING (true) WITH CHECK (true)"
                )
            )
        if "ledger_tenant" not in have:
            conn.execute(
                sa.text(
                    f"CREATE POLICY ledger_tenant ON {t} FOR SELECT TO {APP_ROLE} "
                    f"USING (org_id = current_setting('{ORG_SETTING}', true))"
                )
            )
        if row_security_of(conn, name) != (True, True):
            conn.execute(sa.text(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY"))
            conn.execute(sa.text(f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY"))


def row_security_of(conn: Connection, table: str) -> tuple[bool, bool]:
    """(enabled, forced) row-level security of ``table`` in the current schema."""
    row = conn.execute(
        sa.text(
            "SELECT c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = :t AND n.nspname = current_schema()"
        ),
        {"t": table},
    ).one()
    return bool(row[0]), bool(row[1])


def sqlite_truncate_wal(path: Any) -> None:
    """Copy a SQLite file's WAL into the database and empty it (after an erasure)."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
