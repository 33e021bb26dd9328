"""Shared CLI plumbing: one ledger per invocation, output, and one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn
from uuid import UUID

import typer
from eventsourcing.persistence import PersistenceError
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from ledger.domain.errors import LedgerError
from ledger.domain.values import RequestContext

console = Console()
JsonOpt = typer.Option(False, "--json", help="print JSON instead of text")


def fail(message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


@contextmanager
def opened(*, catch_up: bool = False) -> Iterator[Any]:
    """Bootstrap the ledger from the environment; map every expected error to one line."""
    from ledger.bootstrap import bootstrap
    from ledger.settings import Settings

    ledger = None
    try:
        try:
            settings = Settings()
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(f"bad setting {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        ledger = bootstrap(settings)
        if catch_up:
            ledger.runner.catch_up()
        yield ledger
    except LedgerError as exc:
        from ledger.api.problems import status_and_code

        fail(f"{status_and_code(exc)[1]}: {exc.message}")
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except OverflowError:
        fail("a number or date is out of range")
    except (OSError, ValueError) as exc:
        fail(str(exc) or type(exc).__name__)
    except (SQLAlchemyError, PersistenceError) as exc:
        # e.g. the database is down or refuses connections: one line, no traceback
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        fail(f"database error: {detail[0] if detail else type(exc).__name__}")
    finally:
        if ledger is not None:
            ledger.close()


def cli_context() -> RequestContext:
    return RequestContext.none()


def cli_actor() -> Any:
    """The operator running the CLI, as the actor of the events it appends."""
    from ledger.bootstrap import cli_actor as actor

    return actor()


def parse_uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        fail(f"{what} must be a UUID, got {value!r}")


def parse_time(value: str, what: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{what} must be an RFC 3339 time such as 2027-01-31T00:00:00Z, got {value!r}")
    if dt.tzinfo is None:
        fail(f"{what} must carry a time zone (e.g. Z), got {value!r}")
    return dt


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, UUID | set | frozenset):
        return sorted(obj) if isinstance(obj, set | frozenset) else str(obj)
    raise TypeError(type(obj).__name__)


def emit(data: Any, as_json: bool, human: Callable[[Any], None] | None = None) -> None:
    if as_json or human is None:
        sys.stdout.write(json.dumps(data, default=_default, indent=2, ensure_ascii=False) + "\n")
    else:
        human(data)
