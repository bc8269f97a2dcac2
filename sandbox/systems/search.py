"""Keyset-paginated search over standard records (shared by the five sample systems).

Semantics: every filter is an exact string match on a standard field (AND); results are in id
order; ``after`` returns only ids greater than it; the end of the result set is signalled by
``next_after`` being None (a full page may still be the last one only if nothing follows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from sandbox.generator import Dataset, Record
from sandbox.index import DECODABLE_FIELDS, DatasetIndex
from sandbox.records import RESOURCES


class UnsupportedFilterError(Exception):
    """The filter needs an index, and the dataset is too large to have one."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of standard records and the cursor for the next page (None at the end)."""

    records: list[Record]
    next_after: str | None


def _matches(record: Record, filters: Mapping[str, str]) -> bool:
    return all(record.get(f) == v for f, v in filters.items())


def _candidates(
    dataset: Dataset,
    index: DatasetIndex | None,
    resource: str,
    filters: Mapping[str, str],
    after: str | None,
) -> Iterable[Record]:
    """Records that may match, in id order (filters are re-checked by the caller)."""
    for field, value in filters.items():
        if field in DECODABLE_FIELDS:
            kind = "case" if field == "case_id" else "person"
            case_index = dataset.case_index(kind, value)
            return [] if case_index is None else dataset.case(case_index).records(resource)
    for field, value in filters.items():
        if index is None:
            raise UnsupportedFilterError(field)
        ids = index.lookup(resource, field, value)
        return _fetch(dataset, resource, [i for i in ids if after is None or i > after])
    if index is not None:
        return _fetch(dataset, resource, index.ids_after(resource, after))
    start = 0 if after is None else dataset.case_index(resource, after)
    return dataset.records(resource, start or 0)


def _fetch(dataset: Dataset, resource: str, ids: list[str]) -> Iterator[Record]:
    for record_id in ids:
        record = dataset.get(resource, record_id)
        if record is not None:
            yield record


def search(
    dataset: Dataset,
    index: DatasetIndex | None,
    resource: str,
    filters: Mapping[str, str],
    *,
    after: str | None,
    limit: int,
) -> Page:
    """Up to ``limit`` records of ``resource`` matching ``filters`` with id > ``after``.

    Raises :class:`UnsupportedFilterError` when a non-decodable filter is used without index.
    """
    spec = RESOURCES[resource]
    if limit < 1:
        raise ValueError("limit must be >= 1")
    unknown = set(filters) - set(spec.filters)
    if unknown:
        raise ValueError(f"not a filter of {resource}: {sorted(unknown)}")
    found: list[Record] = []
    for record in _candidates(dataset, index, resource, filters, after):
        record_id = str(record[spec.id_field])
        if after is not None and record_id <= after:
            continue
        if not _matches(record, filters):
            continue
        if len(found) == limit:
            return Page(found, str(found[-1][spec.id_field]))
        found.append(record)
    return Page(found, None)
