"""RFC 9162 (RFC 6962 hashing) Merkle tree core for the tamper-evident audit log.

Pure computation: no I/O and no database access. The database layer supplies a
:class:`NodeReader` and persists the :class:`NodeWrite` records returned by
:meth:`Frontier.append`.

Storage model
-------------
Only hashes of *complete* (perfect) subtrees are ever stored. A node is keyed by
``(level, index)``: level 0 holds leaf hashes, and node ``(l, i)`` covers leaves
``[i * 2**l, (i + 1) * 2**l)``. A complete node never changes once written, so a
single store serves proofs for every past and present tree size. The hash of an
incomplete subtree (the right edge of a tree whose size is not a power of two) is
computed on demand from at most ``ceil(log2 n)`` complete nodes.

Every proof function first computes the exact set of node keys it needs, reads
them with a single :meth:`NodeReader.get_nodes` call, then combines them.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency)
and rejects every hash that is not exactly 32 bytes long.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "MemoryNodeStore",
    "MissingNodeError",
    "NodeKey",
    "NodeReader",
    "NodeWrite",
    "ProofError",
    "build_tree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_at",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""Root hash of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

NodeKey = tuple[int, int]
"""``(level, index)`` of a complete subtree; see the module docstring."""


class ProofError(ValueError):
    """A proof, hash or tree size failed verification; ``str(err)`` gives the reason."""


class MissingNodeError(LookupError):
    """The node store lacks a complete node that must exist for the requested tree size.

    This signals a corrupt or incomplete store (or a tree size beyond what was
    stored), not a bad proof.
    """


@dataclass(frozen=True, slots=True)
class NodeWrite:
    """A complete-subtree hash to persist under key ``(level, index)``."""

    level: int
    index: int
    hash: bytes

    @property
    def key(self) -> NodeKey:
        """The ``(level, index)`` storage key."""
        return (self.level, self.index)


class NodeReader(Protocol):
    """Batch read access to stored complete-subtree hashes."""

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        """Return the stored hash for each requested key.

        Keys that are not stored may be omitted from the result; callers raise
        :class:`MissingNodeError` for them. Implementations should answer with a
        single round trip (e.g. one ``SELECT ... WHERE (level, idx) IN (...)``).
        """
        ...


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# ---------------------------------------------------------------------------
# Tree geometry helpers
# ---------------------------------------------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _split_point(size: int) -> int:
    """Largest power of two strictly smaller than ``size`` (requires ``size > 1``)."""
    return 1 << ((size - 1).bit_length() - 1)


def _range_keys(start: int, end: int) -> list[NodeKey]:
    """Complete nodes whose concatenation is leaves ``[start, end)``, largest first.

    For a range that is a subtree of the RFC 9162 tree (``start`` aligned to a
    power of two at least ``end - start``) this is the binary decomposition of
    ``end - start``: at most ``ceil(log2(end - start))`` nodes, each aligned.
    """
    keys: list[NodeKey] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine the decomposition of an RFC 9162 subtree into its root hash."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _resolve_ranges(ranges: Sequence[tuple[int, int]], reader: NodeReader) -> list[bytes]:
    """Hash each RFC subtree range ``[start, end)`` with one batched node read."""
    per_range = [_range_keys(start, end) for start, end in ranges]
    wanted = list(dict.fromkeys(key for keys in per_range for key in keys))
    found = reader.get_nodes(wanted) if wanted else {}
    missing = [key for key in wanted if key not in found]
    if missing:
        raise MissingNodeError(f"node store lacks complete node(s) {missing[:8]}")
    for key in wanted:
        if len(found[key]) != HASH_SIZE:
            raise MissingNodeError(f"stored node {key} is not {HASH_SIZE} bytes")
    return [_fold_right([found[key] for key in keys]) for keys in per_range]


def _check_size(value: int, what: str) -> None:
    if value < 0:
        raise ValueError(f"{what} must be non-negative, got {value}")


# ---------------------------------------------------------------------------
# Proof generation
# ---------------------------------------------------------------------------


def _inclusion_ranges(index: int, tree_size: int) -> list[tuple[int, int]]:
    """Leaf ranges of the RFC 9162 §2.1.3.1 PATH(index, D[0:tree_size]), in proof order."""
    out: list[tuple[int, int]] = []
    lo, hi = 0, tree_size
    while hi - lo > 1:
        k = _split_point(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def _consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Leaf ranges of RFC 9162 §2.1.4.1 SUBPROOF(size1, D[0:size2], true), in proof order."""
    out: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, size2, size1, True
    while True:
        if m == hi - lo:
            if not complete:
                out.append((lo, hi))
            break
        k = _split_point(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            m -= k
            lo += k
            complete = False
    out.reverse()
    return out


def inclusion_proof(index: int, tree_size: int, reader: NodeReader) -> list[bytes]:
    """Return the RFC 9162 inclusion proof for leaf ``index`` in the tree of ``tree_size``.

    Requires ``0 <= index < tree_size`` (``ValueError`` otherwise). Reads at most
    ``2 * ceil(log2 tree_size)`` complete nodes in one :meth:`NodeReader.get_nodes`
    call. Raises :class:`MissingNodeError` if the store lacks a needed node.
    """
    _check_size(index, "index")
    if index >= tree_size:
        raise ValueError(f"index {index} is outside a tree of size {tree_size}")
    return _resolve_ranges(_inclusion_ranges(index, tree_size), reader)


def consistency_proof(size1: int, size2: int, reader: NodeReader) -> list[bytes]:
    """Return the RFC 9162 consistency proof from tree size ``size1`` to ``size2``.

    Requires ``0 < size1 <= size2`` (``ValueError`` otherwise); the proof for
    ``size1 == size2`` is empty. Uses one :meth:`NodeReader.get_nodes` call and
    raises :class:`MissingNodeError` if the store lacks a needed node.
    """
    if size1 <= 0:
        raise ValueError(f"size1 must be positive, got {size1}")
    if size1 > size2:
        raise ValueError(f"size1 ({size1}) must not exceed size2 ({size2})")
    if size1 == size2:
        return []
    return _resolve_ranges(_consistency_ranges(size1, size2), reader)


def root_at(tree_size: int, reader: NodeReader) -> bytes:
    """Return the root hash of the tree of ``tree_size`` leaves from stored complete nodes.

    Reads at most ``ceil(log2 tree_size)`` nodes in one batch; ``EMPTY_ROOT`` for size 0.
    """
    _check_size(tree_size, "tree_size")
    if tree_size == 0:
        return EMPTY_ROOT
    return _resolve_ranges([(0, tree_size)], reader)[0]


# ---------------------------------------------------------------------------
# Proof verification
# ---------------------------------------------------------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify an RFC 9162 §2.1.3.2 inclusion proof; return ``None`` or raise :class:`ProofError`.

    ``leaf_hash`` is the already-hashed leaf (see :func:`leaf_hash`). All hashes
    must be 32 bytes. Requires ``0 <= index < tree_size``.
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    if index < 0 or tree_size < 0:
        raise ProofError("index and tree size must be non-negative")
    if index >= tree_size:
        raise ProofError(f"index {index} is outside a tree of size {tree_size}")

    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
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
        raise ProofError("inclusion proof is too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Verify an RFC 9162 §2.1.4.2 consistency proof; return ``None`` or raise :class:`ProofError`.

    Requires ``0 < size1 <= size2``: a consistency proof from the empty tree proves
    nothing and is rejected. For ``size1 == size2`` the proof must be empty and the
    roots equal (nothing is hashed, so, as in transparency-dev/merkle and its test
    vectors, their length is not checked). Otherwise all hashes must be 32 bytes.
    """
    if size1 < 0 or size2 < 0:
        raise ProofError("tree sizes must be non-negative")
    if size1 > size2:
        raise ProofError(f"size1 ({size1}) is greater than size2 ({size2})")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError("sizes are equal but the proof is not empty")
        if root1 != root2:
            raise ProofError("sizes are equal but the roots differ")
        return
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    if not proof:
        raise ProofError("consistency proof is empty")

    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is an exact power of two
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
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
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != root1:
        raise ProofError("consistency proof does not reproduce root1")
    if sr != root2:
        raise ProofError("consistency proof does not reproduce root2")


# ---------------------------------------------------------------------------
# Incremental append: the compact range ("frontier") of the right edge
# ---------------------------------------------------------------------------


class Frontier:
    """Right-edge complete-subtree roots of a tree: enough to append and compute the root.

    For a tree of ``size`` leaves the frontier holds one hash per set bit of
    ``size``, ordered left to right (largest subtree first); these are exactly the
    nodes ``_range_keys(0, size)``. Appending is O(log n) and never re-reads leaves.

    Serialised form (:meth:`to_bytes`): 8-byte big-endian ``size`` followed by the
    ``popcount(size)`` hashes of 32 bytes each.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Create a frontier; ``hashes`` must be ``popcount(size)`` 32-byte hashes."""
        if size < 0:
            raise ValueError(f"size must be non-negative, got {size}")
        if size >= 1 << 64:
            raise ValueError("size must fit in 64 bits")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} needs {size.bit_count()} frontier hashes, got {len(hashes)}"
            )
        for h in hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"frontier hashes must be {HASH_SIZE} bytes")
        self._size = size
        self._hashes: list[bytes] = [bytes(h) for h in hashes]

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The frontier hashes, largest subtree first (a serialisable list form)."""
        return tuple(self._hashes)

    def keys(self) -> list[NodeKey]:
        """Node keys of the frontier hashes, in the same order as :attr:`hashes`."""
        return _range_keys(0, self._size)

    def copy(self) -> Frontier:
        """Return an independent copy."""
        return Frontier(self._size, self._hashes)

    def append(self, leaf: bytes) -> list[NodeWrite]:
        """Append a leaf hash; return every node completed by it, leaf first.

        The returned list starts with ``(0, old_size, leaf)`` and continues with each
        newly completed parent, bottom-up; the caller persists all of them.
        """
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
        if self._size + 1 >= 1 << 64:
            raise ValueError("tree size would overflow 64 bits")
        index = self._size
        h = bytes(leaf)
        writes = [NodeWrite(0, index, h)]
        level = 0
        while (self._size >> level) & 1:
            h = node_hash(self._hashes.pop(), h)
            level += 1
            writes.append(NodeWrite(level, index >> level, h))
        self._hashes.append(h)
        self._size += 1
        return writes

    def root(self) -> bytes:
        """Return the RFC 9162 root hash (``EMPTY_ROOT`` for the empty tree)."""
        if not self._hashes:
            return EMPTY_ROOT
        return _fold_right(self._hashes)

    def to_bytes(self) -> bytes:
        """Serialise as ``size (8 bytes, big-endian) || hashes``."""
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        """Parse :meth:`to_bytes` output; ``ValueError`` if the length is inconsistent."""
        if len(data) < 8:
            raise ValueError("frontier encoding is shorter than its 8-byte size prefix")
        size = int.from_bytes(data[:8], "big")
        body = data[8:]
        if len(body) != size.bit_count() * HASH_SIZE:
            raise ValueError(f"frontier encoding has wrong length for tree size {size}")
        hashes = [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        return cls(size, hashes)

    @classmethod
    def from_reader(cls, size: int, reader: NodeReader) -> Frontier:
        """Rebuild the frontier of tree ``size`` from stored complete nodes (one batch read)."""
        if size < 0:
            raise ValueError(f"size must be non-negative, got {size}")
        ranges = [(i << lv, (i + 1) << lv) for lv, i in _range_keys(0, size)]
        return cls(size, _resolve_ranges(ranges, reader))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"


# ---------------------------------------------------------------------------
# In-memory store
# ---------------------------------------------------------------------------


class MemoryNodeStore:
    """Dict-backed :class:`NodeReader` with a writer, for tests and the offline verifier.

    Nodes are write-once: writing a different hash under an existing key raises
    ``ValueError`` (rewriting the same hash is a no-op).
    """

    def __init__(self) -> None:
        """Create an empty store."""
        self._nodes: dict[NodeKey, bytes] = {}

    def put_nodes(self, writes: Iterable[NodeWrite]) -> None:
        """Store complete-subtree hashes, e.g. the result of :meth:`Frontier.append`."""
        for w in writes:
            if len(w.hash) != HASH_SIZE:
                raise ValueError(f"node hash must be {HASH_SIZE} bytes")
            if self._nodes.setdefault(w.key, bytes(w.hash)) != w.hash:
                raise ValueError(f"node {w.key} already stored with a different hash")

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        """Return the stored hashes of ``keys``; unknown keys are omitted."""
        return {key: self._nodes[key] for key in keys if key in self._nodes}

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, key: object) -> bool:
        return key in self._nodes


def build_tree(leaf_hashes: Iterable[bytes]) -> tuple[MemoryNodeStore, Frontier]:
    """Append ``leaf_hashes`` in order to a fresh in-memory tree; return its store and frontier."""
    store = MemoryNodeStore()
    frontier = Frontier()
    for h in leaf_hashes:
        store.put_nodes(frontier.append(h))
    return store, frontier
