"""Tenant isolation for the read models: ORM mappings and a session bound to one organization.

Every read-model table carries ``org_id`` and is mapped (imperatively, over the projection's Core
``Table``) to a class deriving from :class:`TenantScoped`. Queries go through a
:class:`TenantSession`, bound to one org:

* every ORM ``SELECT``/``UPDATE``/``DELETE`` it executes gets ``org_id = <its org>`` added to every
  tenant-scoped entity in it (``with_loader_criteria``), whether or not the query says so;
* it refuses to flush, bulk-insert or bulk-update a row of another org
  (:class:`CrossTenantWriteError`);
* on PostgreSQL, each of its transactions runs as the non-owner role ``ledger_app`` with
  ``ledger.org_id`` set, so row-level security (``ledger.sql.install_row_level_security``) hides
  other orgs' rows even from a query the ORM filter missed. That role may only read.

The projections write with Core on the owner's connections (bulk, fast, all orgs); they are the
only cross-org writers. The few legitimately cross-org reads (the operator's org list; API-key
lookup by key id, which reads the event store) are explicit. See docs/tenancy.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.engine import Connection, Engine

from ledger import sql

mapper_registry = orm.registry()


class CrossTenantWriteError(RuntimeError):
    """A tenant session was asked to write a row of another organization. A programming error,
    never a client's: it is not a ``LedgerError`` and the API answers it with a 500."""


class TenantScoped:
    """Base of every read-model row class that belongs to one organization."""

    # Mapped subclasses shadow it with their own attribute; the filter's lambda is first analysed
    # against this base, so it needs a column to compare (SQLAlchemy's documented mixin pattern).
    org_id: Any = sa.Column("org_id", sa.String(36))


def map_tenant_table(cls: type[TenantScoped], table: sa.Table) -> None:
    """Map ``cls`` over the Core ``table`` (which must have an ``org_id`` column)."""
    if "org_id" not in table.c:
        raise TypeError(f"{table.name} has no org_id column")
    mapper_registry.map_imperatively(cls, table)


def tenant_tables() -> list[str]:
    """Names of every mapped tenant-scoped table."""
    return sorted(
        str(m.local_table.name)  # type: ignore[attr-defined]
        for m in mapper_registry.mappers
        if issubclass(m.class_, TenantScoped)
    )


_COLUMNS: dict[type, tuple[Any, ...]] = {}


def columns(cls: type[TenantScoped]) -> tuple[Any, ...]:
    """All mapped column attributes of ``cls``: ``select(*columns(Row))`` yields plain rows (no
    identity map, no object construction) and is still an ORM statement, so it is filtered."""
    cols = _COLUMNS.get(cls)
    if cols is None:
        cols = _COLUMNS[cls] = tuple(getattr(cls, a.key) for a in sa.inspect(cls).column_attrs)
    return cols


class TenantSession(orm.Session):
    """An ORM session that sees and writes only the rows of one organization."""

    #: Tests only: switch the ORM filter off to prove PostgreSQL's row-level security alone holds.
    orm_filter: ClassVar[bool] = True

    def __init__(
        self,
        bind: Engine | Connection,
        org_id: UUID | str,
        *,
        row_security: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bind=bind, **kwargs)
        self.org_id = str(org_id)
        self.row_security = (
            bind.dialect.name == "postgresql" if row_security is None else row_security
        )


@sa.event.listens_for(TenantSession, "do_orm_execute")
def _add_org_filter(state: orm.ORMExecuteState) -> None:
    session = cast(TenantSession, state.session)
    org = session.org_id
    if state.is_insert or state.is_update:
        _check_written_orgs(state, org)
    if not (state.is_select or state.is_update or state.is_delete) or not session.orm_filter:
        return
    state.statement = state.statement.options(
        orm.with_loader_criteria(TenantScoped, lambda cls: cls.org_id == org, include_aliases=True)
    )


def _check_written_orgs(state: orm.ORMExecuteState, org: str) -> None:
    """Bulk INSERT/UPDATE statements: every row written must name this session's org (or, for an
    UPDATE, leave org_id alone: the filter then keeps it to this org's rows)."""
    params = state.parameters
    rows: list[Mapping[str, Any]] = (
        [] if params is None else [params] if isinstance(params, Mapping) else list(params)
    )
    values = getattr(state.statement, "_values", None) or {}
    inline = {getattr(k, "key", k): v for k, v in values.items()}
    if "org_id" in inline:
        rows = [{**r, "org_id": getattr(inline["org_id"], "value", None)} for r in rows or [{}]]
    if getattr(state.statement, "_multi_values", ()):
        raise CrossTenantWriteError("multi-VALUES statements are not supported in a tenant session")
    for row in rows or ([{}] if state.is_insert else []):
        if state.is_insert and "org_id" not in row:
            raise CrossTenantWriteError("an INSERT through a tenant session must name its org_id")
        if "org_id" in row and str(row["org_id"]) != org:
            raise CrossTenantWriteError(
                f"refusing to write a row of org {row['org_id']} in a session of org {org}"
            )


@sa.event.listens_for(TenantSession, "before_flush")
def _refuse_other_orgs(session: orm.Session, _ctx: Any, _instances: Any) -> None:
    session = cast(TenantSession, session)
    for obj in (*session.new, *session.dirty, *session.deleted):
        if not isinstance(obj, TenantScoped):
            raise CrossTenantWriteError(f"{type(obj).__name__} is not a tenant-scoped row")
        history = sa.inspect(obj).attrs.org_id.history
        orgs = {obj.org_id, *history.deleted}
        if any(str(o) != session.org_id for o in orgs):
            raise CrossTenantWriteError(
                f"refusing to flush a {type(obj).__name__} of org {obj.org_id} "
                f"in a session of org {session.org_id}"
            )


@sa.event.listens_for(TenantSession, "after_begin")
def _enter_row_security(session: orm.Session, _transaction: Any, connection: Connection) -> None:
    tenant = cast(TenantSession, session)
    if tenant.row_security:
        sql.enter_tenant(connection, tenant.org_id)


def install_row_security(engine: Engine) -> None:
    """PostgreSQL: row-level security on every tenant-scoped table (idempotent). Call under
    ``ledger.storage.schema_lock``, after the tables exist."""
    with engine.begin() as conn:
        sql.install_row_level_security(conn, tenant_tables())


__all__ = [
    "CrossTenantWriteError",
    "TenantScoped",
    "TenantSession",
    "columns",
    "install_row_security",
    "map_tenant_table",
    "mapper_registry",
    "tenant_tables",
]
