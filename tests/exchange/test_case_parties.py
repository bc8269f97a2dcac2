"""Who handles a case, from the flow; which 案号 name it; the stage a purpose is valid in.

Against the live gateway and the sample agency systems (seed 2021). Case 2 was tried by the
西夏区 court (刑初), appealed to the intermediate court (刑终) and sent to 银川监狱 (JY640001),
whose stationed procuratorate is JC640100; its police record lists neither the prison nor the
second-instance court. Case 20 is at trial before the 兴庆区 court.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from gateway.audit.service import AuditService
from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers

IN_PRISON, AT_TRIAL = 2, 20
APPROVAL = quote("宁政法督〔2025〕3号")


@pytest.fixture(scope="module")
def gw(shared_exchange_gateway: Gateway) -> Gateway:
    gateway = shared_exchange_gateway
    for name, agency in (
        ("shizuishan_prison", "JY640002"),
        ("city_procuratorate", "JC640100"),
        ("shizuishan_procuratorate", "JC640200"),
        ("court_xixia", "FY640105"),
    ):
        gateway.register(name, agency, ["exchange"])
    return gateway


def _number(dataset: Dataset, index: int, which: int = 0) -> str:
    judgments = dataset.case(index).judgment
    return str(judgments[which]["court_case_number"]) if judgments else ""


def _get(gw: Gateway, client: str, purpose: str, number: str, path: str, **extra: str) -> Any:
    headers = {**exchange_headers(gw, client, purpose, number), **extra}
    return gw.client.get(path, headers=headers)


def _entry(gw: Gateway, response: Any) -> dict[str, Any]:
    service = AuditService(gw.client.app.state.runtime.engine)  # type: ignore[attr-defined]
    return service.entry(int(response.headers["X-Audit-Index"])).document


def test_the_police_record_does_not_know_the_prison(dataset: Dataset) -> None:
    case = dataset.case(IN_PRISON)
    assert "JY640001" not in case.case["handling_agencies"]
    assert "FY640100" not in case.case["handling_agencies"]
    assert case.judgment[-1]["executing_agency"] == "JY640001"
    assert case.judgment[-1]["court_case_number"].startswith("(2024)宁01刑终")


def test_the_prison_the_court_sent_the_convict_to_is_a_party(gw: Gateway, dataset: Dataset) -> None:
    number = _number(dataset, IN_PRISON)
    path = "/v1/resources/judgment/JD0000000202"
    sent_to = _get(gw, "prison", "SENTENCE_EXECUTION", number, path)
    assert sent_to.status_code == 200, sent_to.text
    assert sent_to.json()["record"]["executing_agency"] == "JY640001"
    other = _get(gw, "shizuishan_prison", "SENTENCE_EXECUTION", number, path)
    assert other.status_code == 403
    assert "case binding" in other.json()["detail"]


def test_a_case_resolves_by_any_of_its_case_numbers(gw: Gateway, dataset: Dataset) -> None:
    path = "/v1/resources/judgment/JD0000000202"
    first, second = _number(dataset, IN_PRISON, 0), _number(dataset, IN_PRISON, -1)
    assert "刑初" in first
    assert "刑终" in second
    full_width = second.replace("(", "（").replace(")", "）")
    answers = [
        _get(gw, "prison", "SENTENCE_EXECUTION", number, path)
        for number in (first, second, full_width)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert answers[0].json()["record"] == answers[1].json()["record"] == answers[2].json()["record"]
    # The audit entry keeps the canonical form.
    assert _entry(gw, answers[2])["case_number"] == second
    commutations = dataset.case(1).commutation_parole  # a 刑更 案号, if case 1 has one
    for application in commutations[:1]:
        by_commutation = _get(
            gw,
            "prison",
            "COMMUTATION_PAROLE",
            application["court_case_number"],
            f"/v1/resources/commutation_parole/{application['application_id']}",
        )
        assert by_commutation.status_code in (200, 403)  # resolved: a decision, not "no case"


def test_a_case_number_of_no_court_is_refused(gw: Gateway) -> None:
    response = _get(gw, "court", "TRIAL", "(2024)宁9904刑初465号", "/v1/resources/case/C00000020")
    assert response.status_code == 400
    assert "court code names no known court" in response.json()["detail"]


def test_a_purpose_is_refused_outside_its_stages(gw: Gateway, dataset: Dataset) -> None:
    number = _number(dataset, IN_PRISON)
    # The 西夏区 court tried the case; it is in execution now: TRIAL no longer applies.
    response = _get(gw, "court_xixia", "TRIAL", number, "/v1/resources/case/C00000002")
    assert response.status_code == 403
    problem = response.json()
    assert "case stage: purpose TRIAL is valid in stages TRIAL" in problem["detail"]
    assert "the case is in stage EXECUTION" in problem["detail"]
    # The same court at a case at trial is allowed (the control).
    at_trial = dataset.case(AT_TRIAL).case["court_case_number"]
    assert _get(gw, "court", "TRIAL", at_trial, "/v1/resources/case/C00000020").status_code == 200


def test_the_stationed_procuratorate_supervises_its_prisons_convicts(
    gw: Gateway, dataset: Dataset
) -> None:
    number = _number(dataset, IN_PRISON)
    path = "/v1/resources/sentence_execution/SE0000000201"
    stationed = _get(gw, "city_procuratorate", "EXECUTION_SUPERVISION", number, path)
    assert stationed.status_code == 200, stationed.text
    elsewhere = _get(gw, "shizuishan_procuratorate", "EXECUTION_SUPERVISION", number, path)
    assert elsewhere.status_code == 403
    # Only for its supervision purposes: 审判监督 is not one (it is no party of the case).
    judgment = "/v1/resources/judgment/JD0000000202"
    other_purpose = _get(gw, "city_procuratorate", "TRIAL_SUPERVISION", number, judgment)
    assert other_purpose.status_code == 403


def test_supervised_case_needs_its_approval_reference(gw: Gateway, dataset: Dataset) -> None:
    number = dataset.case(AT_TRIAL).case["court_case_number"]
    path = "/v1/resources/case/C00000020"
    # Without the approval only the statistics view applies: no case name, no brief.
    without = _get(gw, "committee", "OVERSIGHT", number, path)
    assert without.status_code == 200, without.text
    assert "case_name" not in without.json()["record"]
    assert "case_name" in without.json()["withheld"]
    persons = _get(gw, "committee", "OVERSIGHT", number, "/v1/resources/person/P0000002001")
    assert persons.status_code == 403
    assert "X-Approval-Reference" in persons.json()["detail"]
    supervised = _get(
        gw, "committee", "OVERSIGHT", number, path, **{"X-Approval-Reference": APPROVAL}
    )
    assert supervised.status_code == 200, supervised.text
    assert supervised.json()["record"]["case_name"]  # the case itself, not statistics
    entry = _entry(gw, supervised)
    assert entry["action"] == {"approval_reference": "宁政法督〔2025〕3号"}
    other_case = _get(
        gw,
        "committee",
        "OVERSIGHT",
        number,
        "/v1/resources/case/C00000021",
        **{"X-Approval-Reference": APPROVAL},
    )
    assert other_case.status_code == 404  # bound to the supervised case
    bad = _get(gw, "committee", "OVERSIGHT", number, path, **{"X-Approval-Reference": "%FF"})
    assert bad.status_code == 400


def test_technical_investigation_approvals_for_oversight(gw: Gateway, dataset: Dataset) -> None:
    # 技侦审批监督: the approval metadata, never the target, the kind or the material.
    case_id = next(f"C{i:08d}" for i in (7, 32, 57) if dataset.case(i).technical_investigation)
    response = gw.client.get(
        f"/v1/resources/technical_investigation?case_id={case_id}",
        headers=exchange_headers(gw, "committee", "OVERSIGHT"),
    )
    assert response.status_code == 200, response.text
    records = response.json()["records"]
    assert records
    for record in records:
        assert {"approval_number", "approved_by", "approval_date", "extension_count"} <= set(record)
        assert not {"target_person_id", "measure_type", "material_summary"} & set(record)
