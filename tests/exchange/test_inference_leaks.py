"""Regression tests for the leaks an outside review found with ordinary agency tokens (issue 11).

Each test reproduces one reported leak through the live gateway and the sample agency systems
over loopback HTTP, and asserts what must hold instead. They fail on the gateway as it was
before subject-wide protection (commit 8fe0194): see docs/security.md, "Inference channels".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.audit.service import AuditService
from gateway.observability.logging import configure_logging
from sandbox.generator import Dataset, id_check_char
from sandbox.server import serve_in_thread
from tests.auth.helpers import logging_restored
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.exchange.test_exchange_faults import FaultProxy

# Sample data (seed 2021, 300 cases): see sandbox/header.py for the special residues. Each
# request names a case in a stage its purpose is valid in (the purposes' stages).
SEALED_CASE = 3  # P0000000301 a sealed juvenile (刑诉法 第286条); closed
SEALED_IN_CORRECTIONS = 203  # P0000020301 sealed, on probation with SF640104 (in execution)
WITNESS_CASE = 5  # P0000000503 a protected witness (第64条); in execution, JC640104 supervises
INFORMANT_CASE = 263  # P0000026305 an informant (第111条); at trial with FY640104
VICTIM_CASE = 259  # P0000025903 a sexual-offence victim; in prosecution review, GA640105
SECRET_CASE = 13  # secrecy mark MIMI; GA640105 handled it
INVESTIGATION_CASE = 124  # under investigation by GA640105
COURT_TRIAL_CASE = 20  # FY640104 tries it; nobody in it has a record elsewhere
REPEAT_CASE, EARLIER_CASE = 144, 59  # 144's suspect is 59's defendant (same 公民身份号码)
APPROVAL = (
    "%E5%AE%81%E6%94%BF%E6%B3%95%E7%9D%A3%E3%80%942025%E3%80%953%E5%8F%B7"  # 宁政法督〔2025〕3号
)


def _headers(gw: Gateway, dataset: Dataset, client: str, purpose: str, case: int) -> Any:
    record = dataset.case(case).case
    headers = exchange_headers(
        gw, client, purpose, record["court_case_number"] or record["police_case_number"]
    )
    if client == "committee":  # 挂牌督办: the approval it acts under
        headers["X-Approval-Reference"] = APPROVAL
    return headers


def _person(dataset: Dataset, case: int, person_id: str) -> dict[str, Any]:
    return next(p for p in dataset.case(case).records("person") if p["person_id"] == person_id)


def _entry(gw: Gateway, response: Any) -> dict[str, Any]:
    service = AuditService(gw.client.app.state.runtime.engine)  # type: ignore[attr-defined]
    return service.entry(int(response.headers["X-Audit-Index"])).document


def _same_answer(a: Any, b: Any, *, ignore: tuple[str, ...] = ()) -> None:
    """Status, content type and body agree (the problem's request id and instance aside)."""
    assert a.status_code == b.status_code
    assert a.headers["content-type"] == b.headers["content-type"]
    body_a, body_b = a.json(), b.json()
    for key in ("request_id", "instance", *ignore):
        body_a.pop(key, None)
        body_b.pop(key, None)
    assert body_a == body_b


@pytest.fixture(scope="module")
def gw(shared_exchange_gateway: Gateway) -> Gateway:
    return shared_exchange_gateway


def test_a_masked_id_number_cannot_be_recovered_by_filtering_on_it(
    gw: Gateway, dataset: Dataset
) -> None:
    # 检察院 刑事执行监督 sees 身份证号 masked (nl.pi.id-number-partial). Trying the ~34 numbers
    # that fit the visible digits used to single out the real one.
    headers = _headers(gw, dataset, "procuratorate", "EXECUTION_SUPERVISION", WITNESS_CASE)
    shown = gw.client.get("/v1/resources/person/P0000000501", headers=headers)
    assert shown.status_code == 200
    real = _person(dataset, WITNESS_CASE, "P0000000501")["id_number"]
    assert shown.json()["record"]["id_number"] == real[:6] + "*" * 8 + real[-4:]
    sequence = "001" if real[14:17] != "001" else "003"
    wrong = real[:14] + sequence + id_check_char(real[:14] + sequence)  # a valid number too
    right_answer = gw.client.get(f"/v1/resources/person?id_number={real}", headers=headers)
    wrong_answer = gw.client.get(f"/v1/resources/person?id_number={wrong}", headers=headers)
    assert right_answer.status_code == 403
    problem = right_answer.json()
    assert problem["type"].endswith("/filter-not-permitted")
    assert problem["field"] == "id_number"
    _same_answer(right_answer, wrong_answer)
    entry = _entry(gw, right_answer)
    assert (entry["decision"], entry["status"]) == ("deny", 403)
    assert entry["upstream"]["status"] is None  # refused before any upstream call


def test_a_withheld_identity_is_not_confirmed_by_a_search(gw: Gateway, dataset: Dataset) -> None:
    # The court sees the informant's record but not its 身份证号 (刑诉法 第111条); a search by
    # the right number must find nothing, like a wrong one. (The protected witness of the
    # first review is now verified by the trial court itself: 第64条 and the 2021 解释.)
    headers = _headers(gw, dataset, "court", "TRIAL", INFORMANT_CASE)
    informant = _person(dataset, INFORMANT_CASE, "P0000026305")
    assert informant["role"] == "INFORMANT"
    fetched = gw.client.get("/v1/resources/person/P0000026305", headers=headers)
    assert fetched.status_code == 200
    assert "id_number" not in fetched.json()["record"]
    assert "name" not in fetched.json()["record"]
    guess = gw.client.get(
        f"/v1/resources/person?id_number={informant['id_number']}", headers=headers
    )
    miss = gw.client.get("/v1/resources/person?id_number=11010519491231002X", headers=headers)
    assert guess.status_code == 200
    assert guess.json()["records"] == []
    _same_answer(guess, miss)
    # An ordinary person of the same case is still found by the same kind of search.
    ordinary = _person(dataset, INFORMANT_CASE, "P0000026303")
    found = gw.client.get(
        f"/v1/resources/person?id_number={ordinary['id_number']}", headers=headers
    )
    assert [r["person_id"] for r in found.json()["records"]] == ["P0000026303"]


def test_a_sexual_offence_victims_identity_is_not_confirmed_by_a_search(
    gw: Gateway, dataset: Dataset
) -> None:
    # Any age now: the victim here is an adult.
    headers = _headers(gw, dataset, "police_xixia", "INVESTIGATION", VICTIM_CASE)
    victim = _person(dataset, VICTIM_CASE, "P0000025903")
    assert victim["sexual_offence_victim"]
    assert not victim["is_minor"]
    guess = gw.client.get(f"/v1/resources/person?id_number={victim['id_number']}", headers=headers)
    miss = gw.client.get("/v1/resources/person?id_number=11010519491231002X", headers=headers)
    assert guess.json()["records"] == []
    _same_answer(guess, miss)


def test_a_sealed_juveniles_records_are_concealed_on_every_resource(
    gw: Gateway, dataset: Dataset
) -> None:
    # 挂牌督办 is no 第286条 exception: the sealed person is not there, and neither is their
    # judgment (to the 社区矫正机构 it used to answer 200 with name and sentence).
    headers = _headers(gw, dataset, "committee", "OVERSIGHT", SEALED_CASE)
    sealed = gw.client.get("/v1/resources/person/P0000000301", headers=headers)
    missing_person = gw.client.get("/v1/resources/person/P0000000399", headers=headers)
    assert sealed.status_code == 404
    _same_answer(sealed, missing_person, ignore=("detail",))
    judgment = gw.client.get("/v1/resources/judgment/JD0000000301", headers=headers)
    missing = gw.client.get("/v1/resources/judgment/JD0000000399", headers=headers)
    assert judgment.status_code == 404
    _same_answer(judgment, missing, ignore=("detail",))
    assert judgment.json()["detail"].replace("301", "399") == missing.json()["detail"]
    entry = _entry(gw, judgment)
    assert entry["decision"] == "deny"
    assert "nl.juvenile.sealed-record" in entry["rule_ids"]
    assert entry["detail"].startswith("concealed")
    search = gw.client.get("/v1/resources/judgment?case_id=C00000003", headers=headers)
    assert search.json()["records"] == []
    # The victims of the same case are not sealed: their records are released.
    persons = gw.client.get("/v1/resources/person?case_id=C00000003", headers=headers)
    others = {p["person_id"] for p in dataset.case(SEALED_CASE).person} - {"P0000000301"}
    assert {r["person_id"] for r in persons.json()["records"]} == others


def test_prior_record_checks_reach_only_the_bound_cases_own_persons(
    gw: Gateway, dataset: Dataset
) -> None:
    # A judgment search by defendant_id used to return judgments of any case, secret ones
    # included, which the same caller could not fetch by id.
    headers = _headers(gw, dataset, "court", "PRIOR_RECORD_CHECK", COURT_TRIAL_CASE)
    secret = gw.client.get("/v1/resources/judgment?defendant_id=P0000001301", headers=headers)
    stranger = gw.client.get("/v1/resources/judgment?defendant_id=P0000000201", headers=headers)
    nobody = gw.client.get("/v1/resources/judgment?defendant_id=P0000029999", headers=headers)
    for response in (secret, stranger):
        assert response.status_code == 200
        assert response.json()["records"] == []
        _same_answer(response, nobody)
    assert dataset.case(SECRET_CASE).case["secrecy_mark"] != "NONE"


def test_a_prior_record_check_finds_the_defendants_earlier_judgment(
    gw: Gateway, dataset: Dataset
) -> None:
    # The control: the same search does reach the bound case's own defendant's earlier case.
    repeat = dataset.case(REPEAT_CASE)
    assert repeat.repeat_of == EARLIER_CASE
    earlier = next(
        p for p in dataset.case(EARLIER_CASE).records("person") if p["role"] == "DEFENDANT"
    )
    assert earlier["id_number"] in {p["id_number"] for p in repeat.records("person")}
    headers = _headers(gw, dataset, "police", "PRIOR_RECORD_CHECK", REPEAT_CASE)
    response = gw.client.get(
        f"/v1/resources/judgment?defendant_id={earlier['person_id']}", headers=headers
    )
    assert response.status_code == 200
    records = response.json()["records"]
    assert [r["case_id"] for r in records] == [f"C{EARLIER_CASE:08d}"]
    assert "summary" not in records[0]  # the permission's fields only
    assert "ga.prior-record.judgment" in _entry(gw, response)["rule_ids"]


def test_withheld_lists_do_not_depend_on_what_a_page_holds(gw: Gateway, dataset: Dataset) -> None:
    # A page holding a protected witness used to list the witness's withheld identity fields,
    # so the list alone said "a protected person is on this page".
    fields = "&fields=person_id,name,id_number,role"

    def lists(client: str, purpose: str, case: int, query: str) -> tuple[Any, Any]:
        headers = _headers(gw, dataset, client, purpose, case)
        body = gw.client.get(f"/v1/resources/person?{query}{fields}", headers=headers).json()
        return body["withheld"], body["masked"]

    ordinary = _person(dataset, INFORMANT_CASE, "P0000026303")["id_number"]
    court = ("court", "TRIAL", INFORMANT_CASE)
    assert (
        lists(*court, "case_id=C00000263")  # the informant is on this page
        == lists(*court, f"id_number={ordinary}")  # only an ordinary witness
        == lists(*court, "id_number=11010519491231002X")  # nothing
        == ([], [])
    )
    # The same with a concealed record (the sealed juvenile) on the page.
    committee = ("committee", "OVERSIGHT", SEALED_CASE)
    assert (
        lists(*committee, "case_id=C00000003")
        == lists(*committee, "case_id=C00000004")  # another case: nothing of it
        == (["id_number"], [])
    )


def test_a_concealed_case_gives_the_same_empty_page_as_an_ordinary_one(
    gw: Gateway, dataset: Dataset
) -> None:
    # A secret case (concealed as a whole) used to answer "withheld": [] where an ordinary
    # case with no matching record answered the request's real withheld list.
    fields = "&fields=ti_id,measure_type,material_summary"

    def search(case: int) -> Any:
        headers = _headers(gw, dataset, "police_xixia", "INVESTIGATION", case)
        case_id = f"C{case:08d}"
        return gw.client.get(
            f"/v1/resources/technical_investigation?case_id={case_id}{fields}", headers=headers
        )

    concealed, ordinary = search(SECRET_CASE), search(INVESTIGATION_CASE)
    assert ordinary.json()["withheld"] == ["material_summary"]
    _same_answer(concealed, ordinary)
    assert _entry(gw, concealed)["detail"].startswith("concealed")


class RefusingPolice(FaultProxy):
    """Forwards to the police sample system, but refuses one record with the agency's own
    words (a name and an ID number), as a real system might for a sealed record."""

    REFUSED = "/api/v1/ryxx/P0000020301"
    TEXT = "记录已封存，不得提供：刘某 640122200305224398"

    async def forward(self, request: Request) -> Response:
        if request.url.path == self.REFUSED:
            return JSONResponse({"code": 403, "msg": self.TEXT, "data": None})
        return await super().forward(request)


@pytest.fixture
def refusing(
    exchange_gateway: Callable[..., Gateway], agency_urls: dict[str, str]
) -> Iterator[Gateway]:
    proxy = RefusingPolice(agency_urls["public_security"])
    with serve_in_thread(proxy.app) as url:  # type: ignore[arg-type]
        gateway = exchange_gateway(upstream_urls={"public_security": url})
        with logging_restored(gateway.settings.log_level):
            yield gateway


def test_agency_error_text_reaches_neither_the_caller_nor_the_audit_log(
    refusing: Gateway, dataset: Dataset, capfd: pytest.CaptureFixture[str]
) -> None:
    gw = refusing
    # Log to this test's captured stderr (pytest swaps the stream between setup and call).
    configure_logging("WARNING", json=True)
    # The 司法局 may see the sealed convict it supervises (第286条第2款, 社区矫正法 第20条);
    # the committee may not.
    for client, purpose in (("justice", "COMMUNITY_CORRECTION"), ("committee", "OVERSIGHT")):
        headers = _headers(gw, dataset, client, purpose, SEALED_IN_CORRECTIONS)
        refused = gw.client.get("/v1/resources/person/P0000020301", headers=headers)
        missing = gw.client.get("/v1/resources/person/P0000020399", headers=headers)
        # Whether or not this caller could have seen the record, a refusal reads as absence.
        assert refused.status_code == 404
        _same_answer(refused, missing, ignore=("detail",))
        entry = _entry(gw, refused)
        text = json.dumps(entry, ensure_ascii=False)
        assert "刘某" not in text
        assert "640122200305224398" not in text
        assert "封存" not in text
        assert "upstream_refused" in entry["detail"]
        assert refused.text.find("封存") == -1
    logged = capfd.readouterr().err
    assert "upstream_refused" in logged
    assert "640122200305224398" not in logged  # ID numbers are redacted in the operator's log
    assert "[id-number]" in logged
