"""The write mapping (standard -> native) reads back as the record it wrote (issue 15).

For every resource of every sample agency, each generated record is written with the agency's
declared mapping and read back; the result must be the record the sample system's own native
rendering reads as. The sample systems are the independent oracle of the native formats.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import MappingError
from adapters.config import AgencyConfig, FieldMapConfig, ResourceMapConfig
from adapters.mapping import CompiledFieldMap, CompiledResourceMap
from gateway.standard import Standard
from sandbox.generator import Dataset
from sandbox.systems import AGENCY_KINDS, system_spec

CASES = 40


def _records(dataset: Dataset, resource: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index in range(min(CASES, len(dataset))):
        value = getattr(dataset.case(index), resource)
        out.extend(dict(r) for r in (value if isinstance(value, list) else [value]))
    return out


@pytest.mark.parametrize("kind", AGENCY_KINDS)
def test_every_resource_round_trips(
    kind: str, agency_configs: dict[str, AgencyConfig], sandbox_dataset: Dataset
) -> None:
    config = agency_configs[kind]
    spec = system_spec(kind, sandbox_dataset)
    natives = {r.resource: r for r in spec.resources}
    checked = 0
    for name, resource_config in config.resources.items():
        mapping = CompiledResourceMap(kind, name, resource_config)
        for record in _records(sandbox_dataset, name):
            expected = mapping.to_standard(natives[name].to_native(record))
            assert expected == {k: v for k, v in record.items() if v is not None}
            written = mapping.to_native(record)
            assert mapping.to_standard(written) == expected, (kind, name)
            checked += 1
    assert checked > 0


def _map(fields: dict[str, Any]) -> CompiledResourceMap:
    config = ResourceMapConfig.model_validate(
        {"id_field": "id", "fetch": {"path": "/x/{id}"}, "fields": {"id": "ID", **fields}}
    )
    return CompiledResourceMap("test", "thing", config)


def test_nested_paths_lists_codes_dates_and_flags() -> None:
    mapping = _map(
        {
            "division": "AJFSD.XZQHDM",
            "defendant_ids": {"from": "defendants[].personId", "type": "list"},
            "defendant_names": {"from": "defendants[].name", "type": "list"},
            "stage": {"from": "AJZT", "codes": {"10": "INVESTIGATION", "90": "CLOSED"}},
            "filing_date": {"from": "LASJ", "date_format": "%Y%m%d"},
            "sealed": {"from": "FCBZ", "true_values": ["1"], "false_values": ["0"]},
            "agencies": {"from": "BLDWDM", "split": ","},
        }
    )
    record = {
        "id": "1",
        "division": "640104",
        "defendant_ids": ["P1", "P2"],
        "defendant_names": ["甲", "乙"],
        "stage": "CLOSED",
        "filing_date": "2021-03-02",
        "sealed": False,
        "agencies": ["GA640104", "JC640104"],
    }
    native = mapping.to_native(record)
    assert native == {
        "ID": "1",
        "AJFSD": {"XZQHDM": "640104"},
        "defendants": [{"personId": "P1", "name": "甲"}, {"personId": "P2", "name": "乙"}],
        "AJZT": "90",
        "LASJ": "20210302",
        "FCBZ": "0",
        "BLDWDM": "GA640104,JC640104",
    }
    assert mapping.to_standard(native) == record
    assert mapping.to_native({"id": "1", "stage": None}) == {"ID": "1"}


def test_two_fields_writing_different_values_at_one_path_are_refused() -> None:
    mapping = _map({"a": "X", "b": "X"})
    assert mapping.to_native({"id": "1", "a": "v", "b": "v"}) == {"ID": "1", "X": "v"}
    with pytest.raises(MappingError) as info:
        mapping.to_native({"id": "1", "a": "v", "b": "w"})
    assert info.value.field_name == "b"
    nested = _map({"a": "X", "b": "X.Y"})
    with pytest.raises(MappingError):
        nested.to_native({"id": "1", "a": "v", "b": "w"})


@pytest.mark.parametrize("kind", AGENCY_KINDS)
def test_delivery_record_tables_round_trip(
    kind: str, agency_configs: dict[str, AgencyConfig], sandbox_dataset: Dataset
) -> None:
    """What an agency's delivery tables write reads back as the record (nothing lost)."""
    deliveries = agency_configs[kind].deliveries
    assert deliveries is not None
    for resource, fields in deliveries.records.items():
        mapping = CompiledFieldMap(kind, resource, fields)
        records = _records(sandbox_dataset, resource)
        assert records, resource
        for record in records:
            present = {k: v for k, v in record.items() if v is not None}
            assert mapping.to_standard(mapping.to_native(record)) == present, (kind, resource)


def test_every_kind_can_be_written_for_every_recipient(
    agency_configs: dict[str, AgencyConfig], standard: Standard
) -> None:
    """Each recipient kind and each copy (抄送) kind of each delivery kind has a document type
    code and a record table."""
    for delivery_kind in standard.deliveries:
        for recipient in (*delivery_kind.recipients, *delivery_kind.copies):
            config = agency_configs[recipient]
            deliveries = config.deliveries
            assert deliveries is not None, recipient
            kind_field = deliveries.fields["kind"]
            assert isinstance(kind_field, FieldMapConfig)
            assert delivery_kind.code in (kind_field.codes or {}).values(), (
                delivery_kind.code,
                recipient,
            )
            resource = delivery_kind.resource
            assert resource in deliveries.records or resource in config.resources, (
                delivery_kind.code,
                recipient,
            )
