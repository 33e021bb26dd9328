"""``python -m ledger.cli``: the same command line as the ``license-ledger`` script."""

from ledger.cli.main import main

main()
