"""Tamper-evident audit log primitives: pure functions over bytes.

- ``ledger.audit.merkle`` — RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and
  consistency proofs, and an incremental ``MerkleLog`` for projections.
- ``ledger.audit.note`` — C2SP ``signed-note`` and ``tlog-checkpoint`` encoding,
  Ed25519 signing and fail-closed verification.

Error tree::

    MerkleProofError       (ledger.audit.merkle) a proof does not verify or is malformed
    NoteVerificationError  (ledger.audit.note)   a signed note is malformed or unverified
"""
