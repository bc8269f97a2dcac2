"""The sandbox generator emits STANDARD records: every one must validate against the standard.

The generator's code values (``sandbox.codes``) are the agreed ones; the standard's
project-defined code tables carry exactly these codes (``person_role`` may list more roles
than the generator produces).
"""

from __future__ import annotations

from collections.abc import Collection

import pytest

from gateway.standard import Standard, validate_record
from sandbox import codes
from sandbox.generator import Dataset
from sandbox.records import RESOURCES

SEED = 2021
N_CASES = 600
SHOWN = 20  # violations printed on failure

#: code table id → the generator's codes for it.
GENERATOR_TABLES: dict[str, Collection[str]] = {
    "case_stage": codes.STAGES,
    "coercive_measure_type": codes.MEASURE_TYPES,
    "arrest_decision": codes.ARREST_DECISIONS,
    "verdict": codes.VERDICTS,
    "penalty_type": codes.PENALTY_TYPES,
    "execution_status": codes.EXECUTION_STATUSES,
    "commutation_parole_kind": codes.COMMUTATION_KINDS,
    "commutation_parole_ruling": codes.RULINGS,
    "community_correction_type": codes.CORRECTION_TYPES,
    "community_correction_status": codes.CORRECTION_STATUSES,
    "secrecy_mark": codes.SECRECY_MARKS,
    "technical_investigation_measure": codes.TI_MEASURE_TYPES,
    "case_category": codes.CASE_CATEGORIES,
}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(seed=SEED, n_cases=N_CASES)


def test_every_generated_record_validates(standard: Standard, dataset: Dataset) -> None:
    violations: list[str] = []
    counts = dict.fromkeys(RESOURCES, 0)
    for bundle in dataset:
        for resource in RESOURCES:
            for record in bundle.records(resource):
                counts[resource] += 1
                for v in validate_record(standard, resource, record):
                    id_value = record.get(RESOURCES[resource].id_field)
                    violations.append(
                        f"{resource} {id_value}: {v.field}={record.get(v.field)!r} ({v.reason})"
                    )
    shown = "\n".join(violations[:SHOWN])
    assert not violations, f"{len(violations)} violations, first {SHOWN}:\n{shown}"
    empty = [name for name, n in counts.items() if n == 0]
    assert not empty, f"no generated records of {empty}"


def test_special_records_are_included_and_valid(standard: Standard, dataset: Dataset) -> None:
    specials = dataset.special_cases()
    assert all(specials.values()), specials
    for kind, case_ids in specials.items():
        for cid in case_ids:
            bundle = dataset.case(int(cid[1:]))
            assert bundle.special == kind
            for resource, records in bundle.by_type().items():
                for record in records:
                    assert validate_record(standard, resource, record) == [], (kind, resource)
    secret = [dataset.case(int(c[1:])).case for c in specials["state_secret"]]
    assert all(c["secrecy_mark"] != "NONE" for c in secret)
    ti = [dataset.case(int(c[1:])) for c in specials["technical_investigation"]]
    assert any(b.technical_investigation for b in ti)
    sealed = [dataset.case(int(c[1:])).person[0] for c in specials["sealed_juvenile"]]
    assert all(p["is_minor"] and p["juvenile_record_sealed"] for p in sealed)


@pytest.mark.parametrize("table", sorted(GENERATOR_TABLES))
def test_standard_tables_carry_the_generator_codes(standard: Standard, table: str) -> None:
    assert set(standard.code_table(table).codes) == set(GENERATOR_TABLES[table])


def test_generator_roles_and_agencies_are_in_the_standard(standard: Standard) -> None:
    assert set(codes.PERSON_ROLES) <= set(standard.code_table("person_role").codes)
    agencies = {a.code: a.name for a in standard.agencies}
    assert agencies == codes.AGENCIES
    assert set(codes.DIVISIONS) <= set(standard.code_table("division").codes)
    assert set(codes.ETHNICITY_WEIGHTS) <= set(standard.code_table("ethnicity").codes)
    # Technical-investigation approvers are prefecture bureaus outside the agency list;
    # the standard admits them through the approved_by pattern, not the agency list.
    assert not set(codes.TI_APPROVERS.values()) & set(agencies)
