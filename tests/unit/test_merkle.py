"""RFC 6962 Merkle tree: roots, proof round trips, tamper detection, incremental log."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit.merkle import (
    MerkleLog,
    MerkleProofError,
    consistency_proof,
    empty_root,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

MAX = 33


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


LEAVES = _leaves(70)


def _flip(b: bytes, bit: int = 0) -> bytes:
    return bytes([b[0] ^ (1 << bit)]) + b[1:]


# --- hashing and roots -----------------------------------------------------------------


def test_leaf_and_node_hashes_use_rfc6962_domain_separation() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert root([]) == empty_root() == hashlib.sha256(b"").digest()
    assert root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_single_leaf_root_is_the_leaf_hash() -> None:
    # RFC 6962 empty-leaf hash, as published with Certificate Transparency test data.
    assert root([leaf_hash(b"")]).hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


def test_small_trees_split_at_largest_power_of_two() -> None:
    a, b, c, d, e = LEAVES[:5]
    assert root([a, b]) == node_hash(a, b)
    assert root([a, b, c]) == node_hash(node_hash(a, b), c)
    assert root([a, b, c, d]) == node_hash(node_hash(a, b), node_hash(c, d))
    assert root([a, b, c, d, e]) == node_hash(node_hash(node_hash(a, b), node_hash(c, d)), e)


def test_root_of_rfc6962_reference_tree_matches_published_value() -> None:
    # The 8-leaf tree from the Certificate Transparency / transparency-dev test data.
    data = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    assert root([leaf_hash(x) for x in data]).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )


# --- inclusion -------------------------------------------------------------------------


def test_every_inclusion_proof_verifies_up_to_33_leaves() -> None:
    for size in range(1, MAX + 1):
        leaves = LEAVES[:size]
        r = root(leaves)
        for index in range(size):
            verify_inclusion(leaves[index], index, size, inclusion_proof(leaves, index), r)


def test_inclusion_proof_rejects_index_outside_tree() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(LEAVES[:4], 4)
    with pytest.raises(ValueError):
        inclusion_proof(LEAVES[:4], -1)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (4, 4), (5, 4), (-1, 4)])
def test_inclusion_with_index_not_below_size_fails(index: int, size: int) -> None:
    with pytest.raises(MerkleProofError):
        verify_inclusion(LEAVES[0], index, size, [], root(LEAVES[:4]))


def test_inclusion_with_truncated_or_extended_proof_fails() -> None:
    leaves = LEAVES[:13]
    proof = inclusion_proof(leaves, 6)
    r = root(leaves)
    for bad in (proof[:-1], [*proof, proof[0]], [proof[0], *proof], []):
        with pytest.raises(MerkleProofError):
            verify_inclusion(leaves[6], 6, 13, bad, r)


def test_inclusion_with_malformed_proof_element_fails() -> None:
    leaves = LEAVES[:8]
    proof = inclusion_proof(leaves, 3)
    proof[1] = proof[1][:31]
    with pytest.raises(MerkleProofError):
        verify_inclusion(leaves[3], 3, 8, proof, root(leaves))


def _inclusion_shape(index: int, size: int) -> tuple[str, ...] | None:
    """Sibling sides of PATH(index, D[size]) straight from the RFC 9162 recursion."""
    if not 0 <= index < size:
        return None
    sides: list[str] = []
    while size > 1:
        k = 1 << ((size - 1).bit_length() - 1)
        if index < k:
            sides.append("R")
            size = k
        else:
            sides.append("L")
            index, size = index - k, size - k
    return tuple(reversed(sides))


@given(size=st.integers(1, MAX), data=st.data())
def test_tampered_inclusion_hash_never_verifies(size: int, data: st.DataObject) -> None:
    leaves = LEAVES[:size]
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(leaves, index)
    r = root(leaves)
    leaf = leaves[index]
    bit = data.draw(st.integers(0, 7))
    what = data.draw(st.sampled_from(["element", "leaf", "root"]))
    if what == "element" and proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        proof[i] = _flip(proof[i], bit)
    elif what == "leaf":
        leaf = _flip(leaf, bit)
    else:
        r = _flip(r, bit)
    with pytest.raises(MerkleProofError):
        verify_inclusion(leaf, index, size, proof, r)


@given(size=st.integers(1, MAX), data=st.data())
def test_tampered_inclusion_position_verifies_only_for_identical_path_shape(
    size: int, data: st.DataObject
) -> None:
    # A proof carries hashes, not positions: it also fits any (index, size) whose audit path
    # has the same left/right shape (e.g. leaf 0 of 17 and of 18). The signed checkpoint is
    # what binds the size; here we check the verifier accepts exactly those and no others.
    leaves = LEAVES[:size]
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(leaves, index)
    new_index = data.draw(st.integers(-1, 2 * MAX))
    new_size = data.draw(st.integers(0, 2 * MAX))
    same_shape = _inclusion_shape(new_index, new_size) == _inclusion_shape(index, size)
    try:
        verify_inclusion(leaves[index], new_index, new_size, proof, root(leaves))
    except MerkleProofError:
        assert not same_shape
    else:
        assert same_shape


def test_inclusion_proof_for_a_different_index_in_the_same_tree_fails() -> None:
    for size in range(2, MAX + 1):
        leaves = LEAVES[:size]
        r = root(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            for other in range(size):
                if other != index:
                    with pytest.raises(MerkleProofError):
                        verify_inclusion(leaves[index], other, size, proof, r)


# --- consistency -----------------------------------------------------------------------


def test_every_consistency_proof_verifies_up_to_33_leaves() -> None:
    for new in range(1, MAX + 1):
        new_root = root(LEAVES[:new])
        for old in range(1, new + 1):
            proof = consistency_proof(LEAVES[:new], old)
            verify_consistency(old, new, proof, root(LEAVES[:old]), new_root)


def test_consistency_proof_for_equal_sizes_is_empty() -> None:
    assert consistency_proof(LEAVES[:7], 7) == []


@pytest.mark.parametrize("old", [0, 8, -1])
def test_consistency_proof_rejects_size_outside_tree(old: int) -> None:
    with pytest.raises(ValueError):
        consistency_proof(LEAVES[:7], old)


def test_consistency_from_empty_tree_fails() -> None:
    with pytest.raises(MerkleProofError):
        verify_consistency(0, 5, [], empty_root(), root(LEAVES[:5]))


def test_consistency_backwards_in_time_fails() -> None:
    with pytest.raises(MerkleProofError):
        verify_consistency(5, 4, [], root(LEAVES[:5]), root(LEAVES[:4]))


def test_consistency_of_equal_sizes_needs_equal_roots_and_no_proof() -> None:
    r = root(LEAVES[:5])
    verify_consistency(5, 5, [], r, r)
    with pytest.raises(MerkleProofError):
        verify_consistency(5, 5, [r], r, r)
    with pytest.raises(MerkleProofError):
        verify_consistency(5, 5, [], r, _flip(r))


def test_consistency_with_forked_history_fails() -> None:
    forked = [*LEAVES[:3], leaf_hash(b"forged"), *LEAVES[4:10]]
    proof = consistency_proof(forked, 6)
    with pytest.raises(MerkleProofError):
        verify_consistency(6, 10, proof, root(LEAVES[:6]), root(forked))


def _consistency_shape(old: int, new: int) -> tuple[str, ...] | None:
    """Node kinds of PROOF(old, D[new]) straight from the RFC 9162 SUBPROOF recursion."""
    if not 0 < old < new:
        return None
    kinds: list[str] = []
    complete = True
    while old != new:
        k = 1 << ((new - 1).bit_length() - 1)
        if old <= k:
            kinds.append("R")
            new = k
        else:
            kinds.append("L")
            old, new, complete = old - k, new - k, False
    if not complete:
        kinds.append("seed")
    return tuple(reversed(kinds))


@given(data=st.data())
def test_tampered_consistency_hash_never_verifies(data: st.DataObject) -> None:
    new = data.draw(st.integers(2, MAX))
    old = data.draw(st.integers(1, new - 1))
    proof = consistency_proof(LEAVES[:new], old)
    old_root, new_root = root(LEAVES[:old]), root(LEAVES[:new])
    what = data.draw(st.sampled_from(["element", "old_root", "new_root", "drop", "extra"]))
    bit = data.draw(st.integers(0, 7))
    if what == "element":
        i = data.draw(st.integers(0, len(proof) - 1))
        proof[i] = _flip(proof[i], bit)
    elif what == "old_root":
        old_root = _flip(old_root, bit)
    elif what == "new_root":
        new_root = _flip(new_root, bit)
    elif what == "drop":
        del proof[data.draw(st.integers(0, len(proof) - 1))]
    else:
        proof.insert(data.draw(st.integers(0, len(proof))), new_root)
    with pytest.raises(MerkleProofError):
        verify_consistency(old, new, proof, old_root, new_root)


@given(data=st.data())
def test_tampered_consistency_sizes_verify_only_for_identical_proof_shape(
    data: st.DataObject,
) -> None:
    new = data.draw(st.integers(2, MAX))
    old = data.draw(st.integers(1, new - 1))
    proof = consistency_proof(LEAVES[:new], old)
    new_old = data.draw(st.integers(-1, 2 * MAX))
    new_new = data.draw(st.integers(-1, 2 * MAX))
    same_shape = _consistency_shape(new_old, new_new) == _consistency_shape(old, new)
    try:
        verify_consistency(new_old, new_new, proof, root(LEAVES[:old]), root(LEAVES[:new]))
    except MerkleProofError:
        assert not same_shape
    else:
        assert same_shape


# --- incremental log -------------------------------------------------------------------


def test_incremental_log_root_equals_batch_root_for_every_size_up_to_70() -> None:
    log = MerkleLog()
    assert log.root() == root([])
    for n, h in enumerate(LEAVES, start=1):
        assert log.append(h) == n - 1
        assert log.size == n
        assert log.root() == root(LEAVES[:n])
        assert len(log.subtree_hashes) == n.bit_count()


def test_incremental_log_root_equals_batch_root_for_random_sizes() -> None:
    rng = random.Random(6962)
    for _ in range(5):
        n = rng.randrange(71, 3000)
        leaves = [leaf_hash(rng.randbytes(16)) for _ in range(n)]
        log = MerkleLog()
        for h in leaves:
            log.append(h)
        assert log.root() == root(leaves)


def test_resumed_log_continues_where_it_left_off() -> None:
    log = MerkleLog()
    for h in LEAVES[:37]:
        log.append(h)
    resumed = MerkleLog.resume(log.size, log.subtree_hashes)
    for h in LEAVES[37:]:
        resumed.append(h)
    assert resumed.root() == root(LEAVES)


def test_resume_rejects_state_that_does_not_match_size() -> None:
    with pytest.raises(ValueError):
        MerkleLog.resume(3, [LEAVES[0]])
    with pytest.raises(ValueError):
        MerkleLog.resume(1, [b"short"])


def test_log_rejects_leaf_that_is_not_a_hash() -> None:
    with pytest.raises(ValueError):
        MerkleLog().append(b"raw event bytes")
