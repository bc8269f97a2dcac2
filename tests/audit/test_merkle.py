"""Tests for gateway.audit.merkle: RFC 9162 vectors, reference-model properties, tampering."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryNodeStore,
    MissingNodeError,
    NodeKey,
    NodeWrite,
    ProofError,
    build_tree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_at,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------
# Test vectors of transparency-dev/merkle, vendored in testdata/merkle (origin and licence there)
# ---------------------------------------------------------------------------

TESTDATA = Path(__file__).resolve().parent / "testdata" / "merkle"
VECTOR_FILES = sorted(TESTDATA.rglob("*.json")) if TESTDATA.is_dir() else []


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _run_vector(vec: Mapping[str, Any]) -> None:
    proof = [_b64(p) for p in vec["proof"] or []]
    if "leafIdx" in vec:
        verify_inclusion(
            _b64(vec["leafHash"]), vec["leafIdx"], vec["treeSize"], proof, _b64(vec["root"])
        )
    else:
        verify_consistency(
            vec["size1"], vec["size2"], proof, _b64(vec["root1"]), _b64(vec["root2"])
        )


def test_vector_folder_present() -> None:
    assert TESTDATA.is_dir(), f"Merkle test vectors missing at {TESTDATA}"
    rel = {p.relative_to(TESTDATA).parts[0] for p in VECTOR_FILES}
    assert rel == {"inclusion", "consistency"}
    assert len(VECTOR_FILES) >= 100


@pytest.mark.parametrize(
    "path",
    VECTOR_FILES or [TESTDATA / "MISSING"],
    ids=lambda p: p.relative_to(TESTDATA).as_posix(),
)
def test_vector(path: Path) -> None:
    assert path.is_file(), f"Merkle test vectors missing at {TESTDATA}"
    vec = json.loads(path.read_text(encoding="utf-8"))
    if vec["wantErr"]:
        with pytest.raises(ProofError):
            _run_vector(vec)
    else:
        _run_vector(vec)


def test_hash_lengths_are_checked_whenever_something_is_hashed() -> None:
    short = b"don't care 2"
    # Equal sizes hash nothing: equal roots are consistent whatever their length (upstream).
    verify_consistency(1, 1, [], short, short)
    with pytest.raises(ProofError, match="roots differ"):
        verify_consistency(1, 1, [], short, b"\x07" * 32)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_consistency(1, 2, [b"\x07" * 32], short, b"\x07" * 32)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_consistency(1, 2, [short], b"\x07" * 32, b"\x07" * 32)


# The tree behind the RFC 6962 vectors (transparency-dev/merkle).
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip


def test_happy_path_vectors_are_reproduced_by_generator() -> None:
    store, frontier = build_tree(leaf_hash(d) for d in RFC_LEAVES)
    checked = 0
    for path in VECTOR_FILES:
        vec = json.loads(path.read_text(encoding="utf-8"))
        if vec["wantErr"] or path.parent.name == "additional":
            continue
        proof = [_b64(p) for p in vec["proof"] or []]
        if "leafIdx" in vec:
            if path.parent.name == "single-entry":
                continue
            assert root_at(vec["treeSize"], store) == _b64(vec["root"])
            assert inclusion_proof(vec["leafIdx"], vec["treeSize"], store) == proof
        else:
            assert root_at(vec["size1"], store) == _b64(vec["root1"])
            assert root_at(vec["size2"], store) == _b64(vec["root2"])
            assert consistency_proof(vec["size1"], vec["size2"], store) == proof
        checked += 1
    assert checked >= 10
    assert frontier.root() == _b64("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")


# ---------------------------------------------------------------------------
# Reference model (naive recursive RFC 9162 definitions over all leaves)
# ---------------------------------------------------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def _leaves(n: int) -> list[bytes]:
    return [f"entry-{i}".encode() for i in range(n)]


class CountingReader:
    """Wraps a store and records every batch read."""

    def __init__(self, store: MemoryNodeStore) -> None:
        self.store = store
        self.calls: list[list[NodeKey]] = []

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        self.calls.append(list(keys))
        return self.store.get_nodes(keys)


MAX_N = 300
_TREE = _leaves(MAX_N)
_STORE, _ = build_tree(leaf_hash(d) for d in _TREE)
_ROOTS = [ref_mth(_TREE[:n]) for n in range(MAX_N + 1)]

# ---------------------------------------------------------------------------
# Hashing primitives
# ---------------------------------------------------------------------------


def test_hash_primitives() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == _b64("bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=")
    a, b = b"a" * 32, b"b" * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert leaf_hash(b"x") != node_hash(b"", b"x")  # domain separation


# ---------------------------------------------------------------------------
# Frontier
# ---------------------------------------------------------------------------


def test_frontier_root_matches_reference_for_every_size() -> None:
    frontier = Frontier()
    assert frontier.root() == EMPTY_ROOT
    for n in range(1, MAX_N + 1):
        frontier.append(leaf_hash(_TREE[n - 1]))
        assert frontier.size == n
        assert frontier.root() == _ROOTS[n], n
        assert len(frontier.hashes) == n.bit_count() <= math.ceil(math.log2(n)) + 1


def test_frontier_append_writes_exactly_the_completed_nodes() -> None:
    frontier = Frontier()
    stored: dict[NodeKey, bytes] = {}
    for n in range(1, 130):
        old = n - 1
        writes = frontier.append(leaf_hash(_TREE[old]))
        # The leaf itself, then one parent per trailing 1-bit of the old size.
        trailing_ones = (old ^ (old + 1)).bit_length() - 1
        assert len(writes) == 1 + trailing_ones
        assert writes[0] == NodeWrite(0, old, leaf_hash(_TREE[old]))
        for w in writes:
            assert w.key not in stored
            start, end = w.index << w.level, (w.index + 1) << w.level
            assert end == n
            assert w.hash == ref_mth(_TREE[start:end])
            stored[w.key] = w.hash
        complete = {(lv, i) for lv in range(8) for i in range(n >> lv)}
        assert set(stored) == complete


def test_frontier_serialisation_roundtrip() -> None:
    frontier = Frontier()
    for n in range(MAX_N):
        data = frontier.to_bytes()
        assert len(data) == 8 + 32 * frontier.size.bit_count()
        again = Frontier.from_bytes(data)
        assert again == frontier
        assert Frontier(frontier.size, list(frontier.hashes)) == frontier
        assert Frontier.from_reader(frontier.size, _STORE) == frontier
        frontier.append(leaf_hash(_TREE[n]))
    copy = frontier.copy()
    copy.append(leaf_hash(b"more"))
    assert copy.size == frontier.size + 1


def test_frontier_rejects_inconsistent_state() -> None:
    with pytest.raises(ValueError, match="frontier hashes"):
        Frontier(3, [b"\x00" * 32])
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier(1, [b"\x00" * 31])
    with pytest.raises(ValueError, match="non-negative"):
        Frontier(-1, [])
    with pytest.raises(ValueError, match="wrong length"):
        Frontier.from_bytes((3).to_bytes(8, "big") + b"\x00" * 32)
    with pytest.raises(ValueError, match="shorter"):
        Frontier.from_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier().append(b"short")


# ---------------------------------------------------------------------------
# Proof generation against the reference model
# ---------------------------------------------------------------------------


def test_inclusion_and_consistency_exhaustive_small() -> None:
    for n in range(1, 34):
        root = _ROOTS[n]
        assert root_at(n, _STORE) == root
        for i in range(n):
            proof = inclusion_proof(i, n, _STORE)
            assert proof == ref_path(i, _TREE[:n])
            verify_inclusion(leaf_hash(_TREE[i]), i, n, proof, root)
        for m in range(1, n + 1):
            proof = consistency_proof(m, n, _STORE)
            assert proof == ref_subproof(m, _TREE[:n], True)
            verify_consistency(m, n, proof, _ROOTS[m], root)


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data(), n=st.integers(1, MAX_N))
def test_inclusion_property(data: st.DataObject, n: int) -> None:
    i = data.draw(st.integers(0, n - 1))
    reader = CountingReader(_STORE)
    proof = inclusion_proof(i, n, reader)
    assert len(reader.calls) == (1 if n > 1 else 0)
    assert sum(map(len, reader.calls)) <= 2 * math.ceil(math.log2(n))
    assert proof == ref_path(i, _TREE[:n])
    verify_inclusion(leaf_hash(_TREE[i]), i, n, proof, _ROOTS[n])


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data(), n=st.integers(1, MAX_N))
def test_consistency_property(data: st.DataObject, n: int) -> None:
    m = data.draw(st.integers(1, n))
    reader = CountingReader(_STORE)
    proof = consistency_proof(m, n, reader)
    assert len(reader.calls) == (0 if m == n else 1)
    assert proof == ref_subproof(m, _TREE[:n], True)
    verify_consistency(m, n, proof, _ROOTS[m], _ROOTS[n])


@settings(max_examples=100, deadline=None, database=None)
@given(n=st.integers(0, MAX_N))
def test_root_at_property(n: int) -> None:
    reader = CountingReader(_STORE)
    assert root_at(n, reader) == _ROOTS[n]
    assert len(reader.calls) == (1 if n else 0)
    if n:
        # Only complete nodes, at most one per set bit of n: never all the leaves.
        assert len(reader.calls[0]) == n.bit_count()


@settings(max_examples=50, deadline=None, database=None)
@given(n=st.integers(0, 200))
def test_frontier_matches_reference_random_leaves(n: int) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest()[: i % 7] for i in range(n)]
    store, frontier = build_tree(leaf_hash(d) for d in leaves)
    assert frontier.root() == ref_mth(leaves)
    assert root_at(n, store) == ref_mth(leaves)


# ---------------------------------------------------------------------------
# Tampering
# ---------------------------------------------------------------------------


def _flip(b: bytes, pos: int) -> bytes:
    return b[:pos] + bytes([b[pos] ^ 0x01]) + b[pos + 1 :]


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data(), n=st.integers(2, MAX_N))
def test_tampered_inclusion_fails(data: st.DataObject, n: int) -> None:
    i = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(i, n, _STORE)
    leaf = leaf_hash(_TREE[i])
    j = data.draw(st.integers(0, len(proof) - 1))
    pos = data.draw(st.integers(0, 31))
    bad_proof = [*proof[:j], _flip(proof[j], pos), *proof[j + 1 :]]
    with pytest.raises(ProofError):
        verify_inclusion(leaf, i, n, bad_proof, _ROOTS[n])
    with pytest.raises(ProofError):
        verify_inclusion(_flip(leaf, pos), i, n, proof, _ROOTS[n])
    with pytest.raises(ProofError):
        verify_inclusion(leaf, i, n, proof, _flip(_ROOTS[n], pos))
    with pytest.raises(ProofError):
        verify_inclusion(leaf, i, n, [*proof, proof[0]], _ROOTS[n])
    with pytest.raises(ProofError):
        verify_inclusion(leaf, i, n, proof[:-1], _ROOTS[n])
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(_TREE[i] + b"x"), i, n, proof, _ROOTS[n])


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data(), n=st.integers(2, MAX_N))
def test_tampered_consistency_fails(data: st.DataObject, n: int) -> None:
    m = data.draw(st.integers(1, n - 1))
    proof = consistency_proof(m, n, _STORE)
    j = data.draw(st.integers(0, len(proof) - 1))
    pos = data.draw(st.integers(0, 31))
    bad_proof = [*proof[:j], _flip(proof[j], pos), *proof[j + 1 :]]
    with pytest.raises(ProofError):
        verify_consistency(m, n, bad_proof, _ROOTS[m], _ROOTS[n])
    with pytest.raises(ProofError):
        verify_consistency(m, n, proof, _flip(_ROOTS[m], pos), _ROOTS[n])
    with pytest.raises(ProofError):
        verify_consistency(m, n, proof, _ROOTS[m], _flip(_ROOTS[n], pos))
    with pytest.raises(ProofError):
        verify_consistency(m, n, [*proof, proof[0]], _ROOTS[m], _ROOTS[n])
    with pytest.raises(ProofError):
        verify_consistency(m, n, proof[1:], _ROOTS[m], _ROOTS[n])


def test_wrong_index_or_size_fails() -> None:
    proof = inclusion_proof(5, 13, _STORE)
    leaf = leaf_hash(_TREE[5])
    for i, n in [(4, 13), (6, 13), (5, 6), (5, 8), (5, 17), (13, 13), (-1, 13)]:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, i, n, proof, _ROOTS[13])
    # RFC 9162 proofs bind the tree size only through the root: sizes whose path
    # shape is identical accept the same proof. The signed checkpoint binds
    # (size, root), so callers must take both from one verified checkpoint.
    verify_inclusion(leaf, 5, 14, proof, _ROOTS[13])


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33])
def test_non_32_byte_hashes_rejected(bad: bytes) -> None:
    proof = inclusion_proof(1, 4, _STORE)
    leaf, root = leaf_hash(_TREE[1]), _ROOTS[4]
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(bad, 1, 4, proof, root)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(leaf, 1, 4, proof, bad)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(leaf, 1, 4, [bad, *proof[1:]], root)
    cproof = consistency_proof(3, 7, _STORE)
    r3, r7 = _ROOTS[3], _ROOTS[7]
    with pytest.raises(ProofError, match="32 bytes"):
        verify_consistency(3, 7, cproof, bad, r7)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_consistency(3, 7, cproof, r3, bad)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_consistency(3, 7, [*cproof, bad], r3, r7)


def test_consistency_edge_cases() -> None:
    verify_consistency(5, 5, [], _ROOTS[5], _ROOTS[5])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 5, [], EMPTY_ROOT, _ROOTS[5])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="greater"):
        verify_consistency(6, 5, [], _ROOTS[6], _ROOTS[5])
    with pytest.raises(ProofError, match="not empty"):
        verify_consistency(5, 5, [_ROOTS[1]], _ROOTS[5], _ROOTS[5])
    with pytest.raises(ProofError, match="empty"):
        verify_consistency(4, 5, [], _ROOTS[4], _ROOTS[5])


# ---------------------------------------------------------------------------
# Generator argument checks and store behaviour
# ---------------------------------------------------------------------------


def test_generator_argument_errors() -> None:
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(5, 5, _STORE)
    with pytest.raises(ValueError, match="non-negative"):
        inclusion_proof(-1, 5, _STORE)
    with pytest.raises(ValueError, match="positive"):
        consistency_proof(0, 5, _STORE)
    with pytest.raises(ValueError, match="exceed"):
        consistency_proof(6, 5, _STORE)
    with pytest.raises(ValueError, match="non-negative"):
        root_at(-1, _STORE)
    assert consistency_proof(7, 7, _STORE) == []
    assert root_at(0, MemoryNodeStore()) == EMPTY_ROOT


def test_missing_nodes_are_reported() -> None:
    store, _ = build_tree(leaf_hash(d) for d in _TREE[:10])
    with pytest.raises(MissingNodeError):
        root_at(11, store)
    with pytest.raises(MissingNodeError):
        inclusion_proof(0, 12, store)
    with pytest.raises(MissingNodeError):
        consistency_proof(3, 16, store)
    with pytest.raises(MissingNodeError):
        Frontier.from_reader(11, store)


def test_memory_store_is_write_once() -> None:
    store = MemoryNodeStore()
    w = NodeWrite(0, 0, b"\x01" * 32)
    store.put_nodes([w])
    store.put_nodes([w])  # same hash again: no-op
    assert len(store) == 1
    assert (0, 0) in store
    with pytest.raises(ValueError, match="different hash"):
        store.put_nodes([NodeWrite(0, 0, b"\x02" * 32)])
    with pytest.raises(ValueError, match="32 bytes"):
        store.put_nodes([NodeWrite(0, 1, b"\x02")])
    assert store.get_nodes([(0, 0), (0, 5)]) == {(0, 0): b"\x01" * 32}


def test_proofs_for_old_sizes_survive_growth() -> None:
    store = MemoryNodeStore()
    frontier = Frontier()
    for n in range(1, 70):
        store.put_nodes(frontier.append(leaf_hash(_TREE[n - 1])))
        for old in (1, n // 2 or 1, n):
            assert root_at(old, store) == _ROOTS[old]
            verify_consistency(old, n, consistency_proof(old, n, store), _ROOTS[old], _ROOTS[n])
