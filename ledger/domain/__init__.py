"""The licensing domain: aggregates, value objects, the validation rules and the error tree.

Imports only the standard library and ``eventsourcing.domain`` (tests/unit/test_architecture.py).
"""
