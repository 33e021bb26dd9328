"""Cryptographic formats (license keys, envelopes). Pure functions over bytes."""
