"""Signed webhook deliveries (Standard Webhooks v1, plus ``X-Signature``).

Modules:

- ``signing``: secrets and the sender-side signature headers (pure functions over bytes).
- ``verify``: the receiver-side verifier; standard library only, so receivers can vendor it.
- ``ssrf``: refuses destinations in private, loopback and other non-public address ranges.
- ``transport``: sends a request pinned to a pre-checked IP address, never following redirects.

This package deliberately imports nothing, so that ``import consumers.webhooks.verify`` loads
only the standard library.
"""
