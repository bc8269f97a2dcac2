"""Copies (抄送): no copy recipient gets what the policy withholds from it (property tests).

For every delivery kind the standard copies, every copy agency kind with the purpose the kind's
yaml declares for it, and generated judgments, defendants and cases, the choke point
(:func:`gateway.deliveries.recipient.check_for_recipient`) lets a copy through only if:

* a plain read of the record by that agency, for that purpose, releases every delivered field
  unchanged (nothing withheld, nothing masked: the read is the oracle, as in test_recipient);
* an independent oracle read from the negative list's YAML agrees: a case marked secret (国家
  秘密) or 工作秘密 never goes, and a sealed juvenile's judgment goes only to a kind and purpose
  that an exception of ``nl.juvenile.sealed-record`` names.

The generated space is not vacuous: ``test_each_outcome_for_the_copies`` shows copies passing
whole and refused, one refusal naming the field (``summary``: the same judgment decided as a
read rather than as the copy the law sends, ``channel``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.deliveries.recipient import check_for_recipient
from gateway.errors import Forbidden
from gateway.policy import PolicyEngine
from gateway.policy.decision import Outcome, SubjectRecords
from tests.policy.conftest import person, request, shipped, shipped_engine

__all__ = ["shipped", "shipped_engine"]  # the fixtures used here

_ROOT = Path(__file__).resolve().parents[2] / "policies"
_AGENCY = {"procuratorate": "JC640104", "public_security": "GA640104"}


def _kind_yaml(code: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (_ROOT / "standard" / "deliveries" / f"{code}.yaml").read_text(encoding="utf-8")
    )
    return data


def _copied_judgments() -> list[tuple[str, str, str]]:
    """(delivery kind, copy kind, purpose) of every kind carrying a judgment, from the yaml."""
    out = []
    for path in sorted((_ROOT / "standard" / "deliveries").glob("*.yaml")):
        data = _kind_yaml(path.stem)
        if data["resource"] != "judgment":
            continue
        for copy in data.get("copies", []):
            out.append((data["code"], copy, data["recipient_purposes"][copy]))
    return out


def _sealed_exceptions() -> list[str]:
    """The condition texts of the exceptions of nl.juvenile.sealed-record."""
    items = yaml.safe_load((_ROOT / "negative_list" / "juveniles.yaml").read_text("utf-8"))
    (item,) = [i for i in items["negative_list"] if i["id"] == "nl.juvenile.sealed-record"]
    return [str(e["condition"]) for e in item["exceptions"]]


def _oracle_may_go(kind: str, purpose: str, sealed: bool, secret: bool, work: bool) -> bool:
    if secret or work:
        return False
    if sealed:
        return any(f'"{kind}"' in c and f'"{purpose}"' in c for c in _sealed_exceptions())
    return True


COPIES = _copied_judgments()


def test_the_standard_copies_judgments_to_the_procuratorate_and_the_police() -> None:
    assert ("community_correction_entry", "procuratorate", "EXECUTION_SUPERVISION") in COPIES
    assert ("community_correction_entry", "public_security", "COMMUNITY_CORRECTION") in COPIES
    assert ("judgment_execution", "procuratorate", "EXECUTION_SUPERVISION") in COPIES


def _judgment(effective: str | None = "2025-05-17") -> dict[str, Any]:
    return {
        "judgment_id": "JD1",
        "case_id": "C1",
        "court_case_number": "(2025)宁0104刑初101号",
        "court": "FY640104",
        "defendant_id": "P1",
        "defendant_name": "林平",
        "verdict": "GUILTY",
        "penalty_type": "FIXED_TERM",
        "term_months": 10,
        "probation_months": 12,
        "judgment_date": "2025-05-06",
        "effective_date": effective,
        "second_instance_basis": None,
        "executing_agency": "SF640104",
        "execution_notice_date": "2025-05-19",
        "summary": "被告人林平犯诈骗罪，判处有期徒刑10个月，缓刑1年。",
    }


def _decide(
    engine: PolicyEngine,
    copy: tuple[str, str, str],
    *,
    sealed: bool = False,
    minor: bool = False,
    secret: str = "NONE",
    work: bool = False,
    closed: bool = False,
    effective: str | None = "2025-05-17",
    handles: bool = True,
    channel: str = "delivery",
) -> tuple[Any, Any, dict[str, Any], SubjectRecords]:
    """The copy's access request, record and subjects, as the delivery would decide them."""
    _, copy_kind, purpose = copy
    agency = _AGENCY[copy_kind]
    record = _judgment(effective)
    subjects = SubjectRecords()
    defendant = person(
        "P1", "C1", role="DEFENDANT", juvenile_record_sealed=sealed, is_minor=minor or sealed
    )
    subjects.add("person", "person_id", [defendant])
    handling = (agency, "FY640104") if handles else ("FY640104",)
    access = request(
        agency,
        "judgment",
        purpose,
        handling=handling,
        secrecy=secret,
        fields=set(record),
        stage="EXECUTION",
        case_flags={"work_secret": work, "closed_trial": closed, "has_sealed_juvenile": sealed},
    )
    # Decided as the delivery decides it: the copy the law sends, not a read (channel).
    return engine, replace(access, channel=channel), record, subjects


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    copy=st.sampled_from(COPIES),
    sealed=st.booleans(),
    minor=st.booleans(),
    secret=st.sampled_from(["NONE", "NONE", "SECRET"]),
    work=st.booleans(),
    closed=st.booleans(),
    effective=st.sampled_from(["2025-05-17", None]),
    handles=st.booleans(),
)
def test_no_copy_recipient_gets_a_field_the_policy_withholds(
    shipped_engine: PolicyEngine,
    copy: tuple[str, str, str],
    sealed: bool,
    minor: bool,
    secret: str,
    work: bool,
    closed: bool,
    effective: str | None,
    handles: bool,
) -> None:
    _, copy_kind, purpose = copy
    engine, access, record, subjects = _decide(
        shipped_engine,
        copy,
        sealed=sealed,
        minor=minor,
        secret=secret,
        work=work,
        closed=closed,
        effective=effective,
        handles=handles,
    )
    try:
        verdict = check_for_recipient(engine, access, record, subjects)
    except Forbidden:
        return  # refused whole: nothing reaches the copy agency
    # The read oracle: a plain read by the copy agency releases every field unchanged.
    decision = engine.decide(access)
    assert decision.outcome is Outcome.ALLOW
    read = engine.filter_record(decision, access, record, subjects)
    assert read.released
    assert not (read.withheld_fields | read.masked_fields) & set(record)
    assert {k: v for k, v in read.record.items() if v is not None} == {
        k: v for k, v in record.items() if v is not None
    }
    assert dict(verdict.record) == dict(read.record)
    # The YAML oracle: never a secret case, a sealed juvenile only under an exception.
    assert _oracle_may_go(copy_kind, purpose, sealed, secret != "NONE", work)
    assert handles


_ENTRY_JC = ("community_correction_entry", "procuratorate", "EXECUTION_SUPERVISION")
_ENTRY_GA = ("community_correction_entry", "public_security", "COMMUNITY_CORRECTION")
_EXEC_JC = ("judgment_execution", "procuratorate", "EXECUTION_SUPERVISION")


@pytest.mark.parametrize(
    ("copy", "changes", "field"),
    [
        # whole: 社区矫正法 第20条 (jc.execution-supervision.judgment-document)
        (_ENTRY_JC, {}, None),
        (_ENTRY_GA, {}, None),  # whole: 社区矫正法 第20条 (ga.community-correction.judgment)
        (_EXEC_JC, {}, None),
        (_EXEC_JC, {"sealed": True}, None),  # 第286条第2款: 司法机关为办案需要
        (_ENTRY_GA, {"sealed": True}, ""),  # no exception for the police's copy: refused
        (_ENTRY_JC, {"work": True}, ""),
        (_ENTRY_GA, {"handles": False}, ""),  # being copied makes no agency a party
        # The same judgment ASKED for by the procuratorate (a read, not the copy): its
        # 判决主文 stays 有条件 (jc.execution-supervision.judgment-document is for deliveries
        # only), so as a delivery decided on a read's terms it would be refused, the field named.
        (_ENTRY_JC, {"channel": "read"}, "summary"),
    ],
)
def test_each_outcome_for_the_copies(
    shipped_engine: PolicyEngine,
    copy: tuple[str, str, str],
    changes: dict[str, Any],
    field: str | None,
) -> None:
    engine, access, record, subjects = _decide(shipped_engine, copy, **changes)
    if field is None:
        verdict = check_for_recipient(engine, access, record, subjects)
        assert dict(verdict.record) == {k: v for k, v in record.items()}
        return
    with pytest.raises(Forbidden) as info:
        check_for_recipient(engine, access, record, subjects)
    if field:
        assert field in info.value.extra["fields"]
