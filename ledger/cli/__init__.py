"""The ``license-ledger`` command line (typer). Every command takes ``--json``."""

from ledger.cli.main import main

__all__ = ["main"]
