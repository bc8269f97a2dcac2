"""Deterministic synthetic dataset of criminal cases in Ningxia, in STANDARD form.

Usage::

    ds = Dataset(seed=2021, n_cases=2000)
    bundle = ds.case(42)                    # CaseBundle: all records of case C00000042
    ds.get("person", "P0000004201")         # one record by id, or None
    for bundle in ds: ...                   # every case, in index order
    ds.special_cases()["sealed_juvenile"]   # ["C00000003", "C00000053", ...]

Contract:

* Case ``i`` is a pure function of ``(seed, i)``: it is generated on demand, in O(1), without
  generating cases ``0..i-1`` (each case derives its own ``random.Random`` from ``(seed, i)``),
  so ``n_cases`` may be in the millions. There is no global state.
* Same seed → identical records; a different seed → different records (ids stay the same).
* Each case flows police → procuratorate → court → prison / community corrections and stops
  where its planned flow stops (withdrawn, not prosecuted, acquitted…) or at the reference
  date ``AS_OF`` = 2024-12-31 (still under investigation, awaiting trial…).
* Special records targeted by the negative list sit at fixed indices, independent of the
  seed: ``index % 100`` in :data:`SPECIAL_RESIDUES` (see :func:`special_cases`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from sandbox.bundle import CaseBundle, Record, build_case
from sandbox.header import SPECIAL_MODULUS, SPECIAL_RESIDUES, special_kind
from sandbox.index import DatasetIndex
from sandbox.people import id_check_char, id_number_valid
from sandbox.records import MAX_CASES, RESOURCES, case_id, case_index_of

__all__ = [
    "SPECIAL_MODULUS",
    "SPECIAL_RESIDUES",
    "CaseBundle",
    "Dataset",
    "Record",
    "id_check_char",
    "id_number_valid",
    "special_cases",
]

DEFAULT_SEED = 2021
DEFAULT_CASES = 2000


def special_cases(n_cases: int) -> dict[str, list[str]]:
    """Case ids of every special-record kind among the first ``n_cases`` cases.

    Independent of the seed. Kinds (see ``header.SPECIAL_RESIDUES`` for the exact records):
    ``sealed_juvenile``, ``protected_witness``, ``technical_investigation``,
    ``minor_sexual_offence_victim``, ``state_secret``, ``unsealed_minor``.
    """
    result: dict[str, list[str]] = {kind: [] for kind in SPECIAL_RESIDUES}
    for index in range(n_cases):
        kind = special_kind(index)
        if kind is not None:
            result[kind].append(case_id(index))
    return result


class Dataset:
    """A deterministic synthetic dataset of ``n_cases`` cases generated from ``seed``.

    Cases are generated lazily and kept in a small LRU cache (``cache_size`` bundles).
    Returned records are shared with the cache: treat them as read-only (copy before editing).
    """

    def __init__(
        self, seed: int = DEFAULT_SEED, n_cases: int = DEFAULT_CASES, *, cache_size: int = 4096
    ) -> None:
        if not 0 <= n_cases <= MAX_CASES:
            raise ValueError(f"n_cases must be in 0..{MAX_CASES}")
        self.seed = seed
        self.n_cases = n_cases
        self._cache: OrderedDict[int, CaseBundle] = OrderedDict()
        self._cache_size = max(cache_size, 1)
        self._index: DatasetIndex | None = None

    def __len__(self) -> int:
        return self.n_cases

    def __iter__(self) -> Iterator[CaseBundle]:
        for index in range(self.n_cases):
            yield self.case(index)

    def __repr__(self) -> str:
        return f"Dataset(seed={self.seed}, n_cases={self.n_cases})"

    def case(self, index: int) -> CaseBundle:
        """All records of case ``index``; IndexError if outside ``0..n_cases-1``."""
        if not 0 <= index < self.n_cases:
            raise IndexError(index)
        bundle = self._cache.get(index)
        if bundle is not None:
            self._cache.move_to_end(index)
            return bundle
        bundle = build_case(self.seed, index)
        self._cache[index] = bundle
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return bundle

    def case_index(self, resource: str, record_id: str) -> int | None:
        """Case index encoded in ``record_id`` of ``resource`` if it is in range, else None.

        Pass ``"person"`` for person references (person_id, defendant_id, target_person_id).
        """
        if resource not in RESOURCES:
            raise KeyError(resource)
        index = case_index_of(resource, record_id)
        return index if index is not None and index < self.n_cases else None

    def get(self, resource: str, record_id: str) -> Record | None:
        """The record of ``resource`` whose id is ``record_id``, or None. O(1)."""
        index = self.case_index(resource, record_id)
        if index is None:
            return None
        id_field = RESOURCES[resource].id_field
        for record in self.case(index).records(resource):
            if record[id_field] == record_id:
                return record
        return None

    def records(self, resource: str, start: int = 0) -> Iterator[Record]:
        """Every record of ``resource`` from case ``start`` on, in id order."""
        for index in range(start, self.n_cases):
            yield from self.case(index).records(resource)

    def special_cases(self) -> dict[str, list[str]]:
        """:func:`special_cases` for this dataset's size."""
        return special_cases(self.n_cases)

    def index(self) -> DatasetIndex:
        """In-memory search indices over every case (built once, on first call; O(n_cases))."""
        if self._index is None:
            self._index = DatasetIndex.build(self)
        return self._index
