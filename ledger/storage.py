"""Where the ledger and its read models live: SQLite files in the data dir, or PostgreSQL.

The event store is the ``eventsourcing`` library's recorder; the read models, the signing keyring
and the projections' tracking positions live in tables reached through SQLAlchemy, in the same
PostgreSQL database (or a second SQLite file, so that view writes never wait on ledger writes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import sql
from ledger.settings import Settings


def event_store_env(settings: Settings) -> dict[str, str]:
    """The ``eventsourcing`` environment for the configured store."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.data_dir / "events.db"),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    url = urlsplit(settings.database_url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        # Kept small: the library opens the whole pool at start, once per process; bursts overflow.
        "POSTGRES_POOL_SIZE": str(settings.database_pool_size),
        "POSTGRES_MAX_OVERFLOW": "20",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_CONNECT_TIMEOUT": "10",
    }
    if settings.database_schema:
        env["POSTGRES_SCHEMA"] = settings.database_schema
    return env


def create_store_engines(settings: Settings) -> tuple[Engine, Engine]:
    """SQLAlchemy engines (writer, reader) for read models, keyring and tracking positions.

    On SQLite the writer takes the write lock when a transaction begins, so that read-then-write
    transactions never fail with SQLITE_BUSY; readers never wait (WAL). On PostgreSQL both are one.
    """
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{settings.data_dir / 'store.db'}"
        args = {"timeout": 30, "check_same_thread": False}
        writer = sa.create_engine(url, connect_args=args, pool_size=5, max_overflow=10)
        reader = sa.create_engine(url, connect_args=args, pool_size=10, max_overflow=20)
        for engine in (writer, reader):
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(writer, "begin", _sqlite_begin_immediate)
        sa.event.listen(reader, "begin", _sqlite_begin_deferred)
        return writer, reader
    url = settings.database_url.replace("postgresql://", "postgresql+psycopg://", 1).replace(
        "postgres://", "postgresql+psycopg://", 1
    )
    connect_args: dict[str, Any] = {"connect_timeout": 10}
    if settings.database_schema:
        connect_args["options"] = f"-csearch_path={settings.database_schema}"
    engine = sa.create_engine(
        url,
        connect_args=connect_args,
        pool_size=settings.database_pool_size,
        max_overflow=20,
        pool_pre_ping=True,
    )
    return engine, engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" hook issue BEGIN
    sql.sqlite_pragmas(dbapi_conn)


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock up front so read-then-write transactions never fail with SQLITE_BUSY.
    sql.sqlite_begin(conn, immediate=True)


def _sqlite_begin_deferred(conn: Any) -> None:
    sql.sqlite_begin(conn, immediate=False)


@contextmanager
def schema_lock(settings: Settings) -> Iterator[None]:
    """Serialise table creation across processes: concurrent DDL on PostgreSQL fails with
    'tuple concurrently updated'. SQLite's own file lock already serialises it."""
    if settings.database_url is None:
        yield
        return
    import psycopg

    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
        sql.advisory_lock(conn)
        try:
            yield
        finally:
            sql.advisory_unlock(conn)
