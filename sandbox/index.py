"""In-memory search indices over a :class:`~sandbox.generator.Dataset`.

Filters on ``case_id`` and on person references are answered by decoding the case index from
the id and need no index. The others (police_case_number, court_case_number, id_number) and
unfiltered listing use the maps built here in one pass over every case: memory and time are
O(n_cases), fine up to ~50k cases (the systems' default ``index_limit``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import Final

from sandbox.bundle import CaseBundle
from sandbox.records import PERSON_REF_FIELDS, RESOURCES

DECODABLE_FIELDS: Final = frozenset({"case_id"}) | PERSON_REF_FIELDS
#: resource → filter fields that need a value index.
INDEXED_FIELDS: Final = {
    name: tuple(f for f in spec.filters if f not in DECODABLE_FIELDS)
    for name, spec in RESOURCES.items()
}


class DatasetIndex:
    """Sorted id lists per resource and value → sorted ids maps per indexed filter field."""

    def __init__(
        self, ids: dict[str, list[str]], values: dict[tuple[str, str], dict[str, list[str]]]
    ) -> None:
        self._ids = ids
        self._values = values

    @classmethod
    def build(cls, dataset: Iterable[CaseBundle]) -> DatasetIndex:
        """Index every case bundle of ``dataset`` (one pass, generating every case once)."""
        ids: dict[str, list[str]] = {name: [] for name in RESOURCES}
        values: dict[tuple[str, str], dict[str, list[str]]] = {
            (name, f): {} for name, fields in INDEXED_FIELDS.items() for f in fields
        }
        for bundle in dataset:
            for name, spec in RESOURCES.items():
                for record in bundle.records(name):
                    record_id = str(record[spec.id_field])
                    ids[name].append(record_id)
                    for f in INDEXED_FIELDS[name]:
                        value = record[f]
                        if isinstance(value, str):
                            values[(name, f)].setdefault(value, []).append(record_id)
        return cls(ids, values)

    def ids_after(self, resource: str, after: str | None) -> list[str]:
        """Sorted ids of ``resource`` greater than ``after`` (all if None)."""
        ids = self._ids[resource]
        return ids if after is None else ids[bisect_right(ids, after) :]

    def lookup(self, resource: str, field: str, value: str) -> list[str]:
        """Sorted ids of ``resource`` records whose ``field`` equals ``value``."""
        return self._values[(resource, field)].get(value, [])

    def add(self, resource: str, field: str, value: str, record_id: str) -> None:
        """Index one more value of a record (a field the sample world filled in later)."""
        found = self._values[(resource, field)].setdefault(value, [])
        if record_id not in found:
            found.append(record_id)
            found.sort()

    def count(self, resource: str) -> int:
        """Number of ``resource`` records in the dataset."""
        return len(self._ids[resource])
