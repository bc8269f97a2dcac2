"""Fixtures for the policy engine tests: the real standard, policy directories, requests."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy import (
    AccessRequest,
    CaseContext,
    PolicyEngine,
    PolicySet,
    load_policy_set,
)
from gateway.standard import Standard, load_standard
from tests.conftest import Gateway, postgres_schema, started_gateway
from tests.exchange.conftest import (  # the sample agency systems, for the admin API tests
    _exchange_overrides,
    _register_exchange_clients,
    agency_urls,
    dataset,
    exchange_gateway,
)

# Fixtures re-exported from tests/exchange for the administration tests.
__all__ = ["agency_urls", "dataset", "exchange_gateway"]

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
CST = timezone(timedelta(hours=8))
NOW = datetime(2025, 6, 1, 10, 0, tzinfo=CST)
TODAY = date(2025, 6, 1)

PERSON_FLAGS = {
    "role": "DEFENDANT",
    "is_minor": False,
    "juvenile_record_sealed": False,
    "protected_witness": False,
    "sexual_offence_victim": False,
}
_PURPOSES = yaml.safe_load((POLICIES / "standard" / "purposes.yaml").read_text(encoding="utf-8"))
#: A stage each purpose is valid in (its first): the default stage of a test request's case.
DEFAULT_STAGE = {p["code"]: p["stages"][0] for p in _PURPOSES["purposes"]}
_CONDITIONS = yaml.safe_load((POLICIES / "standard" / "conditions.yaml").read_text("utf-8"))


def satisfiable(purposes: list[str]) -> list[str]:
    """Every sharing condition that may be satisfied for all of ``purposes``."""
    return [c["id"] for c in _CONDITIONS["conditions"] if set(purposes) <= set(c["purposes"])]


_UNSET: Any = object()


@pytest.fixture(scope="session")
def standard() -> Standard:
    return load_standard(POLICIES / "standard")


@pytest.fixture(scope="session")
def shipped(standard: Standard) -> PolicySet:
    return load_policy_set(POLICIES, standard=standard)


@pytest.fixture(scope="session")
def shipped_engine(shipped: PolicySet) -> PolicyEngine:
    return PolicyEngine(shipped)


def person(person_id: str = "P1", case_id: str = "C1", **fields: Any) -> dict[str, Any]:
    """A person record with the protection flags set (all false unless given)."""
    return {"person_id": person_id, "case_id": case_id, **PERSON_FLAGS, **fields}


def request(
    agency: str = "FY640104",
    resource: str = "person",
    purpose: str = "TRIAL",
    *,
    kind: str | None = None,
    case: str | None = "C1",
    handling: tuple[str, ...] | None = None,
    secrecy: str | None = "NONE",
    fields: set[str] | None = None,
    time: datetime = NOW,
    role: str | None = None,
    filters: dict[str, str] | None = None,
    stage: str | None = _UNSET,
    approval_reference: str | None = None,
    stationed: tuple[str, ...] = (),
    case_flags: dict[str, bool] | None = None,
) -> AccessRequest:
    """An access request; ``case`` names a case the requester handles unless ``handling``.

    The case is in a stage the purpose is valid in unless ``stage`` says otherwise.
    """
    if stage is _UNSET:
        stage = DEFAULT_STAGE.get(purpose)
    kinds = {
        "GA": "public_security",
        "JC": "procuratorate",
        "FY": "court",
        "JY": "prison",
        "SF": "justice",
        "ZF": "committee",
    }
    context = None
    if case is not None:
        context = CaseContext(
            case_id=case,
            police_case_number=None,
            court_case_number=None,
            handling_agencies=frozenset(handling if handling is not None else (agency,)),
            stage=stage,
            secrecy_mark=secrecy,
            stationed_procuratorates=frozenset(stationed),
        )
        flags = {"closed_trial": False, "work_secret": False, "has_sealed_juvenile": False}
        context = replace(context, record={**context.as_record(), **flags, **(case_flags or {})})
    return AccessRequest(
        requester_agency=agency,
        requester_kind=kind or kinds[agency[:2]],
        resource=resource,
        purpose=purpose,
        operator_id="op-1",
        time=time,
        case_number=case,
        case=context,
        requested_fields=None if fields is None else frozenset(fields),
        filters=filters or {},
        role=role,
        approval_reference=approval_reference,
    )


def _dump(data: object) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


PolicyWriter = Callable[..., Path]


@pytest.fixture
def write_policies(tmp_path: Path) -> PolicyWriter:
    """Write a policy directory: ``permissions``/``negative`` are rule lists or raw YAML text.

    Several files: pass ``files={"permissions/a.yaml": text_or_data, ...}``.
    """

    def write(
        permissions: list[dict[str, Any]] | str | None = None,
        negative: list[dict[str, Any]] | str | None = None,
        files: dict[str, Any] | None = None,
        root: Path | None = None,
    ) -> Path:
        base = root or tmp_path / "policies"
        (base / "permissions").mkdir(parents=True, exist_ok=True)
        (base / "negative_list").mkdir(parents=True, exist_ok=True)
        contents: dict[str, Any] = dict(files or {})
        if permissions is not None:
            contents["permissions/rules.yaml"] = (
                permissions if isinstance(permissions, str) else {"permissions": permissions}
            )
        if negative is not None:
            contents["negative_list/rules.yaml"] = (
                negative if isinstance(negative, str) else {"negative_list": negative}
            )
        for rel, body in contents.items():
            text = textwrap.dedent(body) if isinstance(body, str) else _dump(body)
            (base / rel).write_text(text, encoding="utf-8")
        return base

    return write


def load(directory: Path, standard: Standard, **kw: Any) -> PolicySet:
    kw.setdefault("today", TODAY)
    return load_policy_set(directory, standard=standard, **kw)


def engine_for(
    standard: Standard,
    writer: PolicyWriter,
    permissions: list[dict[str, Any]],
    negative: list[dict[str, Any]] | None = None,
) -> PolicyEngine:
    return PolicyEngine(load(writer(permissions, negative or []), standard))


def perm(rule_id: str, **kw: Any) -> dict[str, Any]:
    """A permission dict with sensible defaults (court, person, TRIAL, every field).

    Unless given, ``satisfies`` names every sharing condition its purposes allow, so that
    ``"*"`` means every field the standard lets any such rule share.
    """
    base: dict[str, Any] = {
        "id": rule_id,
        "grantee": {"kind": "court"},
        "resource": "person",
        "fields": "*",
        "purposes": ["TRIAL"],
        "legal_basis": "测试依据",
    }
    base.update(kw)
    if "satisfies" not in kw:
        met = satisfiable(base["purposes"])
        if met:
            base["satisfies"] = met
    elif kw["satisfies"] is None:
        del base["satisfies"]
    return base


def item(rule_id: str, **kw: Any) -> dict[str, Any]:
    """A negative-list item dict (defaults: person, withhold_record)."""
    base: dict[str, Any] = {
        "id": rule_id,
        "resource": "person",
        "action": "withhold_record",
        "legal_basis": "测试依据",
    }
    base.update(kw)
    return base


def copy_policies(destination: Path) -> Path:
    """A copy of the shipped policy directory (standard included)."""
    shutil.copytree(POLICIES, destination)
    return destination


# --- the administration API: gateways wired to the sample agency systems ------------------


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per module and backend (SQLite file, or a PostgreSQL schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('admin-db') / 'gateway.db'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    with postgres_schema(server) as url:
        yield url


@pytest.fixture(scope="module")
def admin_gateway(
    module_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    agency_urls: dict[str, str],
) -> Iterator[Gateway]:
    """One exchange-wired gateway per module and backend, with a second administrator
    ("approver") for maker-checker. The initial import of the shipped files is approved by
    an administrator first (until then it may not be restored by a rollback). Tests that
    publish restore the shipped set afterwards."""
    with started_gateway(
        tmp_path_factory.mktemp("admin"),
        module_database_url,
        **_exchange_overrides(agency_urls, {}),
    ) as gateway:
        _register_exchange_clients(gateway)
        gateway.register("approver", "ZF640000", ["policy:admin"])
        shipped = gateway.client.app.state.runtime.policy.current.version  # type: ignore[attr-defined]
        reviewed = gateway.client.post(
            f"/v1/admin/policies/versions/{shipped}/approve",
            json={"comment": "reviewed the shipped files"},
            headers=gateway.auth("approver"),
        )
        assert reviewed.status_code == 200, reviewed.text
        yield gateway
