"""License Ledger: licensing infrastructure on an event-sourced ledger."""

__version__ = "0.1.0"
__all__ = ["__version__"]
