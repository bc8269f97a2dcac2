"""The five agency files against the five sample systems, over real loopback HTTP.

Every resource type is fetched by id and searched by each of its filters; the results must
equal the generator's records (the mapping is exact) and conform to the standard (the
mapping is complete and its codes are the standard's). Then the sandbox fault switches.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from adapters.base import (
    Adapter,
    StandardRecord,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from adapters.config import AgencyConfig
from adapters.mapped import MappedAdapter
from gateway.standard import Standard, validate_record
from sandbox.generator import Dataset, Record
from sandbox.records import RESOURCES
from sandbox.systems import AGENCY_KINDS

Adapters = tuple[dict[str, Adapter], dict[str, Any]]
SandboxAdapters = Callable[..., Adapters]

#: resource → agency that owns it.
OWNERS = {name: spec.owner for name, spec in RESOURCES.items()}
#: the field each system's ``invalid`` fault breaks in the first record (NATIVE.md).
INVALID_FIELD = {
    "case": "case_category",
    "person": "id_number",
    "coercive_measure": "measure_type",
    "prosecution_transfer": "receiving_procuratorate",
    "technical_investigation": "measure_type",
    "arrest_review": "decision",
    "indictment": "court",
    "judgment": "verdict",
    "sentence_execution": "status",
    "commutation_parole": "kind",
    "community_correction": "correction_type",
}


def standard_form(record: Record) -> StandardRecord:
    """A generator record as an adapter returns it: null fields are absent."""
    return {k: v for k, v in record.items() if v is not None}


def sample(dataset: Dataset, resource: str, count: int = 6) -> list[Record]:
    """``count`` records of ``resource`` spread over the dataset (first, last, between)."""
    records = list(dataset.records(resource))
    assert records, resource
    step = max(len(records) // (count - 1), 1)
    picked = [*records[::step][: count - 1], records[-1]]
    return list({id(r): r for r in picked}.values())


def expected_ids(dataset: Dataset, resource: str, field: str, value: Any) -> list[str]:
    id_field = RESOURCES[resource].id_field
    return [str(r[id_field]) for r in dataset.records(resource) if r.get(field) == value]


async def search_all(
    adapter: Adapter, resource: str, filters: dict[str, str], limit: int
) -> list[StandardRecord]:
    found: list[StandardRecord] = []
    after = None
    for _ in range(1000):
        page = await adapter.search(resource, filters, limit=limit, after=after)
        assert len(page.records) <= limit
        found += page.records
        if page.next_after is None:
            return found
        after = page.next_after
    raise AssertionError("search never ended")


@pytest.fixture
def adapters(agency_adapters: Adapters) -> dict[str, Adapter]:
    return agency_adapters[0]


@pytest.fixture
def faults(agency_adapters: Adapters) -> dict[str, Any]:
    return agency_adapters[1]


# --- every resource: fetch and search --------------------------------------------------------


async def test_health_of_the_five_systems(adapters: dict[str, Adapter]) -> None:
    for kind in AGENCY_KINDS:
        health = await adapters[kind].health()
        assert health.ok, (kind, health.detail)


@pytest.mark.parametrize("resource", sorted(OWNERS))
async def test_fetch_maps_exactly(
    adapters: dict[str, Adapter], sandbox_dataset: Dataset, resource: str
) -> None:
    adapter = adapters[OWNERS[resource]]
    id_field = RESOURCES[resource].id_field
    for record in sample(sandbox_dataset, resource):
        got = await adapter.fetch(resource, str(record[id_field]))
        assert got == standard_form(record)
    unknown = RESOURCES[resource].id_prefix + "99999999" + ("" if resource == "case" else "99")
    assert await adapter.fetch(resource, unknown) is None


@pytest.mark.parametrize("resource", sorted(OWNERS))
async def test_search_by_each_filter(
    adapters: dict[str, Adapter],
    agency_configs: dict[str, AgencyConfig],
    sandbox_dataset: Dataset,
    resource: str,
) -> None:
    adapter = adapters[OWNERS[resource]]
    search = agency_configs[OWNERS[resource]].resources[resource].search
    assert search is not None
    id_field = RESOURCES[resource].id_field
    for field in search.params:
        values = [r[field] for r in sample(sandbox_dataset, resource, 3) if r.get(field)]
        assert values, (resource, field)
        for value in values:
            found = await search_all(adapter, resource, {field: str(value)}, limit=50)
            assert [r[id_field] for r in found] == expected_ids(
                sandbox_dataset, resource, field, value
            )
            assert found
            assert all(r[field] == value for r in found)
    nothing = await adapter.search(
        resource, {next(iter(search.params)): "ZZZ"}, limit=5, after=None
    )
    assert nothing.records == []
    assert nothing.next_after is None


@pytest.mark.parametrize("resource", sorted(OWNERS))
async def test_paging_through_everything(
    adapters: dict[str, Adapter],
    agency_configs: dict[str, AgencyConfig],
    sandbox_dataset: Dataset,
    resource: str,
) -> None:
    """Keyset pages of 100 (the gateway's maximum, = the court's) return every record once."""
    adapter = adapters[OWNERS[resource]]
    found = await search_all(adapter, resource, {}, limit=100)
    assert found == [standard_form(r) for r in sandbox_dataset.records(resource)]


@pytest.mark.parametrize("resource", sorted(OWNERS))
async def test_records_conform_to_the_standard(
    adapters: dict[str, Adapter], standard: Standard, resource: str
) -> None:
    """Every mapped record validates (needs the standard's code tables = the generator's)."""
    adapter = adapters[OWNERS[resource]]
    records = await search_all(adapter, resource, {}, limit=100)
    problems: dict[str, set[str]] = {}
    for record in records:
        for violation in validate_record(standard, resource, record):
            problems.setdefault(violation.field, set()).add(violation.reason)
    assert problems == {}


async def test_oauth_token_lost_by_the_agency_is_fetched_again(
    adapters: dict[str, Adapter], sandbox_dataset: Dataset
) -> None:
    adapter = adapters["procuratorate"]
    record = next(sandbox_dataset.records("indictment"))
    assert await adapter.fetch("indictment", str(record["indictment_id"])) is not None
    assert isinstance(adapter, MappedAdapter)
    client = adapter.http.client
    assert isinstance(client, AsyncOAuth2Client)
    client.token["access_token"] = "forgotten-by-a-restart"
    assert await adapter.fetch("indictment", str(record["indictment_id"])) is not None


async def test_wrong_credentials_are_a_protocol_error(
    sandbox_adapters: SandboxAdapters,
) -> None:
    adapters, _ = sandbox_adapters(secrets=dict.fromkeys(AGENCY_KINDS, "not-the-secret"))
    for kind, adapter in adapters.items():
        with pytest.raises(UpstreamProtocolError) as caught:
            await adapter.search(sorted(adapter.resources)[0], {}, limit=1, after=None)
        assert caught.value.agency == kind
        if kind != "procuratorate":  # whose token endpoint refuses the client first
            assert caught.value.upstream_status == 401


# --- a mapping file is configuration: editing it changes the output --------------------------


@pytest.fixture
def edited_agencies(tmp_path: Path, agencies_dir: Path) -> Path:
    directory = tmp_path / "agencies"
    directory.mkdir()
    for name in ("public_security.yaml", "justice.yaml"):
        shutil.copy(agencies_dir / name, directory / name)
    return directory


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


async def test_changing_a_mapping_file_changes_the_output(
    edited_agencies: Path, sandbox_adapters: SandboxAdapters, sandbox_dataset: Dataset
) -> None:
    case = next(sandbox_dataset.records("case"))
    corrections = list(sandbox_dataset.records("community_correction"))
    # a renamed native field (case_name now read from JYAQ) and changed code translations
    edit(edited_agencies / "public_security.yaml", "case_name: AJMC", "case_name: JYAQ")
    edit(edited_agencies / "justice.yaml", "在矫: ACTIVE", "在矫: IN_CORRECTION")
    edit(edited_agencies / "justice.yaml", "解矫: COMPLETED", "解矫: DISCHARGED")
    adapters, _ = sandbox_adapters(edited_agencies)
    assert sorted(adapters) == ["justice", "public_security"]

    got = await adapters["public_security"].fetch("case", str(case["case_id"]))
    assert got is not None
    assert got["case_name"] == case["brief"] != case["case_name"]

    status = {"ACTIVE": "IN_CORRECTION", "COMPLETED": "DISCHARGED", "REVOKED": "REVOKED"}
    records = await search_all(adapters["justice"], "community_correction", {}, limit=100)
    assert [r["status"] for r in records] == [status[str(r["status"])] for r in corrections]
    assert {"IN_CORRECTION", "DISCHARGED"} <= {r["status"] for r in records}
    got = await adapters["justice"].fetch(
        "community_correction", str(corrections[0]["correction_id"])
    )
    assert got is not None
    assert got["status"] == status[str(corrections[0]["status"])]


# --- faults of the real systems --------------------------------------------------------------


@pytest.mark.parametrize("kind", AGENCY_KINDS)
async def test_status_500_fault(
    adapters: dict[str, Adapter], faults: dict[str, Any], kind: str
) -> None:
    resource = sorted(adapters[kind].resources)[0]
    faults[kind].fault = "status=500"
    with pytest.raises(UpstreamProtocolError) as caught:
        await adapters[kind].search(resource, {}, limit=5, after=None)
    assert caught.value.agency == kind
    assert caught.value.upstream_status == 500


@pytest.mark.parametrize("kind", AGENCY_KINDS)
async def test_garbage_fault(
    adapters: dict[str, Adapter], faults: dict[str, Any], sandbox_dataset: Dataset, kind: str
) -> None:
    resource = sorted(adapters[kind].resources)[0]
    record = next(sandbox_dataset.records(resource))
    faults[kind].fault = "garbage"
    with pytest.raises(UpstreamProtocolError, match=r"JSON|XML") as caught:
        await adapters[kind].fetch(resource, str(record[RESOURCES[resource].id_field]))
    assert caught.value.agency == kind


@pytest.mark.parametrize("kind", ["public_security", "court"])
async def test_huge_fault(adapters: dict[str, Adapter], faults: dict[str, Any], kind: str) -> None:
    resource = sorted(adapters[kind].resources)[0]
    faults[kind].fault = "huge=5"  # 5 MiB streamed without Content-Length; the cap is 4 MiB
    with pytest.raises(UpstreamProtocolError, match="byte limit"):
        await adapters[kind].search(resource, {}, limit=5, after=None)


async def test_slow_fault_beyond_the_timeout(
    sandbox_adapters: SandboxAdapters, sandbox_dataset: Dataset
) -> None:
    adapters, faults = sandbox_adapters(timeout_seconds=0.5)
    faults["justice"].fault = "slow=3000"
    record = next(sandbox_dataset.records("community_correction"))
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout) as caught:
        await adapters["justice"].fetch("community_correction", str(record["correction_id"]))
    assert time.perf_counter() - started < 1.5
    assert caught.value.agency == "justice"


async def test_agency_down_is_unavailable(sandbox_adapters: SandboxAdapters) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapters, _ = sandbox_adapters(base_urls={"court": f"http://127.0.0.1:{port}"})
    started = time.perf_counter()
    with pytest.raises(UpstreamUnavailable) as caught:
        await adapters["court"].fetch("judgment", "JD0000000101")
    assert time.perf_counter() - started < 2
    assert caught.value.agency == "court"
    assert not (await adapters["court"].health()).ok


@pytest.mark.parametrize("resource", sorted(OWNERS))
async def test_invalid_fault_is_flagged_by_the_standard(
    adapters: dict[str, Adapter],
    faults: dict[str, Any],
    sandbox_dataset: Dataset,
    standard: Standard,
    resource: str,
) -> None:
    kind = OWNERS[resource]
    faults[kind].fault = "invalid"
    record = next(sandbox_dataset.records(resource))
    got = await adapters[kind].fetch(resource, str(record[RESOURCES[resource].id_field]))
    assert got is not None
    assert INVALID_FIELD[resource] in {v.field for v in validate_record(standard, resource, got)}
    page = await adapters[kind].search(resource, {}, limit=3, after=None)
    flagged = validate_record(standard, resource, page.records[0])
    assert INVALID_FIELD[resource] in {v.field for v in flagged}
