"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs (standard library only).

Leaves hash as ``SHA-256(0x00 ‖ data)``, interior nodes as ``SHA-256(0x01 ‖ left ‖ right)``
and the empty tree as ``SHA-256("")``. Proof generation follows RFC 9162 §2.1.3.1 and
§2.1.4.1; verification follows the bit-shifting algorithms of §2.1.3.2 and §2.1.4.2, and
every failure — wrong hash, wrong size or index, wrong proof length, malformed input —
raises the one ``MerkleProofError``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = [
    "HASH_SIZE",
    "MerkleLog",
    "MerkleProofError",
    "consistency_proof",
    "empty_root",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class MerkleProofError(Exception):
    """A Merkle inclusion or consistency proof failed to verify or was malformed."""


def leaf_hash(data: bytes) -> bytes:
    """Hash one log entry: ``SHA-256(0x00 ‖ data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two children into their parent: ``SHA-256(0x01 ‖ left ‖ right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def empty_root() -> bytes:
    """Root of the tree with no leaves: ``SHA-256("")``."""
    return hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """Largest power of two strictly less than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of ``leaf_hashes[lo:hi]`` (non-empty) without copying the sequence."""
    n = hi - lo
    if n == 1:
        return leaf_hashes[lo]
    k = _split(n)
    return node_hash(_subtree_root(leaf_hashes, lo, lo + k), _subtree_root(leaf_hashes, lo + k, hi))


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash (MTH) over already-hashed leaves."""
    if not leaf_hashes:
        return empty_root()
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path PATH(index, D_n) for the leaf at ``index`` (RFC 9162 §2.1.3.1).

    Raises ``ValueError`` when ``index`` is outside ``[0, len(leaf_hashes))``.
    """
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"leaf index {index} outside tree of size {len(leaf_hashes)}")
    path: list[bytes] = []
    lo, hi = 0, len(leaf_hashes)
    # Walk down from the root, collecting siblings; the path is leaf-to-root order.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree_root(leaf_hashes, lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Consistency proof PROOF(old_size, D_n) (RFC 9162 §2.1.4.1).

    Defined for ``0 < old_size <= n``; the proof for ``old_size == n`` is empty.
    Raises ``ValueError`` otherwise.
    """
    n = len(leaf_hashes)
    if not 0 < old_size <= n:
        raise ValueError(f"old size {old_size} not in (0, {n}]")
    proof: list[bytes] = []
    lo, hi, m, complete = 0, n, old_size, True
    # SUBPROOF(m, D[lo:hi], complete), unrolled; nodes are emitted root-most last.
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(_subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree_root(leaf_hashes, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(_subtree_root(leaf_hashes, lo, hi))
    proof.reverse()
    return proof


def _check_hashes(proof: Sequence[bytes]) -> None:
    for item in proof:
        if not isinstance(item, bytes) or len(item) != HASH_SIZE:
            raise MerkleProofError("proof element is not a SHA-256 hash")


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` sits at ``index`` in the tree of ``tree_size`` with ``root``.

    RFC 9162 §2.1.3.2. Raises ``MerkleProofError`` on any failure. A proof carries hashes,
    not positions, so it also fits any ``(index, tree_size)`` whose audit path has the same
    shape; take ``tree_size`` from a verified checkpoint, never from the proof's sender.
    """
    if not 0 <= index < tree_size:
        raise MerkleProofError("leaf index outside the tree")
    if len(leaf_hash) != HASH_SIZE:
        raise MerkleProofError("leaf hash is not a SHA-256 hash")
    _check_hashes(proof)
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise MerkleProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError("inclusion proof too short")
    if not _equal(r, root):
        raise MerkleProofError("inclusion proof does not reach the root")


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree ``(old_size, old_root)`` is a prefix of ``(new_size, new_root)``.

    RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``; equal sizes need an empty proof and
    equal roots. A proof from the empty tree is meaningless and rejected, as is any
    malformed input. Raises ``MerkleProofError`` on any failure.
    """
    if old_size <= 0 or new_size < old_size:
        raise MerkleProofError("sizes do not admit a consistency proof")
    if old_size == new_size:
        if proof:
            raise MerkleProofError("proof must be empty for equal sizes")
        if not _equal(old_root, new_root):
            raise MerkleProofError("roots differ for equal sizes")
        return
    if not proof:
        raise MerkleProofError("empty consistency proof")
    _check_hashes(proof)
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    ok = _equal(fr, old_root) & _equal(sr, new_root) & (sn == 0)
    if not ok:
        raise MerkleProofError("consistency proof does not match the roots")


class MerkleLog:
    """Append-only Merkle log holding only its compact range: O(log n) hashes.

    Keeps the roots of the perfect subtrees that cover leaves ``[0, size)``, largest first
    (one per set bit of ``size``). ``root()`` folds them right to left, which equals the
    RFC 6962 MTH. ``resume`` rebuilds the log from a persisted ``(size, subtree_hashes)``.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @classmethod
    def resume(cls, size: int, subtree_hashes: Sequence[bytes]) -> MerkleLog:
        """Rebuild a log from ``size`` and its ``subtree_hashes`` (as persisted)."""
        if size < 0 or len(subtree_hashes) != size.bit_count():
            raise ValueError("subtree hashes do not match the log size")
        if any(len(h) != HASH_SIZE for h in subtree_hashes):
            raise ValueError("subtree hash is not a SHA-256 hash")
        log = cls()
        log._size = size
        log._stack = list(subtree_hashes)
        return log

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def subtree_hashes(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees covering the log, largest first."""
        return tuple(self._stack)

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash; return its index."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError("leaf hash is not a SHA-256 hash")
        index = self._size
        h = leaf_hash
        # Each trailing one bit of the old size is a perfect subtree the new leaf completes.
        n = index
        while n & 1:
            h = node_hash(self._stack.pop(), h)
            n >>= 1
        self._stack.append(h)
        self._size = index + 1
        return index

    def root(self) -> bytes:
        """Current RFC 6962 root hash."""
        if not self._stack:
            return empty_root()
        r = self._stack[-1]
        for h in reversed(self._stack[:-1]):
            r = node_hash(h, r)
        return r
