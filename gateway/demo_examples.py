"""The demo's example requests, each with the status it must get (tests run them all).

Record ids and case numbers come from the sample systems' deterministic data (seed
2021): case i has the same records whatever the dataset size, so these stay valid.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.demo_deliveries import delivery_examples
from sandbox.generator import DEFAULT_SEED, Dataset

__all__ = ["demo_examples"]


def _case_number(dataset: Dataset, index: int) -> str:
    number = dataset.case(index).case.get("court_case_number")
    assert isinstance(number, str)
    return number


def _police_number(dataset: Dataset, index: int) -> str:
    return str(dataset.case(index).case["police_case_number"])


def _exchange(
    name: str,
    client: str,
    path: str,
    purpose: str,
    case_number: str | None,
    expect_status: int,
    note: str,
    approval: str | None = None,
) -> dict[str, Any]:
    headers = {"X-Purpose": purpose, "X-Operator-Id": f"{client}-officer-01"}
    if case_number is not None:
        headers["X-Case-Number"] = quote(case_number, safe="()")
    if approval is not None:
        headers["X-Approval-Reference"] = quote(approval)
    return {
        "name": name,
        "client": client,
        "method": "GET",
        "path": path,
        "headers": headers,
        "expect_status": expect_status,
        "note": note,
    }


def demo_examples() -> list[dict[str, Any]]:
    data = Dataset(DEFAULT_SEED, 300)
    at_trial = _case_number(data, 20)  # C00000020, at trial in 兴庆区 (FY640104)
    # C00000002: 西夏区 court, appealed; the 刑终 judgment sent him to 银川监狱 (JY640001)
    in_prison = _case_number(data, 2)
    second_instance = str(data.case(2).judgment[-1]["court_case_number"])  # its 刑终 案号
    corrections = _case_number(data, 6)  # C00000006, community corrections 兴庆区司法局
    supervised = _case_number(data, 1)  # C00000001, in prison; JC640104 supervises
    sealed = _case_number(data, 3)  # C00000003, a sealed juvenile record (closed case)
    witness = _case_number(data, 5)  # C00000005, a protected witness (in execution)
    investigating = _police_number(data, 23)  # C00000023, under investigation in 兴庆区
    # C00000144, in 审查起诉 (兴庆区): its suspect was sentenced before, in C00000059
    repeat = _police_number(data, 144)
    return [
        {
            "name": "who-am-i",
            "client": "court",
            "method": "GET",
            "path": "/v1/me",
            "headers": {},
            "expect_status": 200,
            "note": "any valid token: the client id, agency and scopes",
        },
        {
            "name": "catalog",
            "client": "court",
            "method": "GET",
            "path": "/v1/catalog",
            "headers": {},
            "expect_status": 200,
            "note": "the unified standard: resources, fields, grades, sharing classes, codes",
        },
        _exchange(
            "court-reads-police-case-file",
            "court",
            "/v1/resources/case/C00000020",
            "TRIAL",
            at_trial,
            200,
            "allowed: court ← public security (JSON, pinyin columns), case-bound",
        ),
        _exchange(
            "court-reads-indictment",
            "court",
            "/v1/resources/indictment/IN0000002001",
            "TRIAL",
            at_trial,
            200,
            "allowed: court ← procuratorate (OAuth2 upstream)",
        ),
        _exchange(
            "court-searches-persons-of-the-case",
            "court",
            "/v1/resources/person?case_id=C00000020&limit=10",
            "TRIAL",
            at_trial,
            200,
            "search by a standard filter, keyset pagination (next_cursor)",
        ),
        _exchange(
            "police-reads-arrest-decision",
            "public_security",
            "/v1/resources/arrest_review/AR0000002301",
            "INVESTIGATION",
            investigating,
            200,
            "allowed: public security ← procuratorate, arrest review decision",
        ),
        _exchange(
            "prison-receives-judgment",
            "prison",
            "/v1/resources/judgment/JD0000000201",
            "SENTENCE_EXECUTION",
            in_prison,
            200,
            "allowed: prison ← court (XML upstream) for sentence execution; the police do not "
            "know the prison: the court's 执行通知书 (executing_agency) makes it a party",
        ),
        _exchange(
            "prison-by-second-instance-number",
            "prison",
            "/v1/resources/judgment/JD0000000202",
            "SENTENCE_EXECUTION",
            second_instance,
            200,
            "the same case named by its 刑终 案号, which only the court's records carry",
        ),
        _exchange(
            "purpose-not-valid-in-stage",
            "court",
            "/v1/resources/judgment/JD0000000202",
            "TRIAL",
            second_instance,
            403,
            "the case is in execution: a trial purpose is refused (case stage)",
        ),
        _exchange(
            "procuratorate-supervises-prison",
            "procuratorate",
            "/v1/resources/sentence_execution/SE0000000101",
            "EXECUTION_SUPERVISION",
            supervised,
            200,
            "allowed: procuratorate ← prison (own codes), 刑事执行监督",
        ),
        _exchange(
            "procuratorate-supervises-community-correction",
            "procuratorate",
            "/v1/resources/community_correction/CC0000000601",
            "EXECUTION_SUPERVISION",
            corrections,
            200,
            "allowed: procuratorate ← justice (its own date format)",
        ),
        _exchange(
            "justice-receives-judgment",
            "justice",
            "/v1/resources/judgment/JD0000000601",
            "COMMUNITY_CORRECTION",
            corrections,
            200,
            "allowed: community corrections ← court, 入矫",
        ),
        {
            **_exchange(
                "masked-fields",
                "procuratorate",
                "/v1/resources/person/P0000000101",
                "EXECUTION_SUPERVISION",
                supervised,
                200,
                "allowed with masks (negative list, 个人信息保护法 第6条): id_number keeps its "
                'first 6 and last 4 characters, birth_date only its year, address becomes "***"; '
                "the response's masked list names them",
            ),
            "expect_masked": ["address", "birth_date", "id_number"],
        },
        _exchange(
            "withheld-fields-protected-witness",
            "procuratorate",
            "/v1/resources/person/P0000000503",
            "EXECUTION_SUPERVISION",
            witness,
            200,
            "a protected witness: identity fields withheld (刑事诉讼法 第64条)",
        ),
        _exchange(
            "default-deny",
            "prison",
            "/v1/resources/technical_investigation/TI0000000701",
            "SENTENCE_EXECUTION",
            _case_number(data, 7),
            403,
            "no permission grants it: default deny, before any call to the agency",
        ),
        _exchange(
            "case-binding-failure",
            "court",
            "/v1/resources/case/C00000002",
            "TRIAL",
            in_prison,
            403,
            "the court does not handle this case (西夏区 court does)",
        ),
        _exchange(
            "neither-confirm-nor-deny",
            "committee",
            "/v1/resources/person/P0000000301",
            "OVERSIGHT",
            sealed,
            404,
            "挂牌督办 of a case with a sealed juvenile record (第286条): indistinguishable "
            "from a missing one",
            approval="宁政法督〔2025〕3号",
        ),
        _exchange(
            "really-missing",
            "committee",
            "/v1/resources/person/P0000000399",
            "OVERSIGHT",
            sealed,
            404,
            "compare with the previous example",
            approval="宁政法督〔2025〕3号",
        ),
        _exchange(
            "exception-lifts-negative-list",
            "procuratorate",
            "/v1/resources/judgment/JD0000000301",
            "TRIAL_SUPERVISION",
            sealed,
            200,
            "the sealed juvenile's judgment for 审判监督: 司法机关为办案需要 lifts the item",
        ),
        _exchange(
            "sealed-persons-judgment-concealed",
            "committee",
            "/v1/resources/judgment/JD0000000301",
            "OVERSIGHT",
            sealed,
            404,
            "挂牌督办 is no 第286条 exception: the sealed juvenile's judgment is not there, as the "
            "person is not (protection follows the person to every resource)",
            approval="宁政法督〔2025〕1号",
        ),
        _exchange(
            "filter-not-permitted",
            "procuratorate",
            "/v1/resources/person?id_number=640104199609173632",
            "EXECUTION_SUPERVISION",
            witness,
            403,
            "a filter is a read: 身份证号 is masked for 刑事执行监督, so no search by it",
        ),
        _exchange(
            "prior-record-check",
            "public_security",
            "/v1/resources/judgment?defendant_id=P0000005901",
            "PRIOR_RECORD_CHECK",
            repeat,
            200,
            "前科审查: the bound case's suspect's judgment in an earlier case (reach)",
        ),
        _exchange(
            "prior-record-check-stranger",
            "public_security",
            "/v1/resources/judgment?defendant_id=P0000000201",
            "PRIOR_RECORD_CHECK",
            repeat,
            200,
            "someone else's judgment is not reached: an empty page",
        ),
        _exchange(
            "missing-purpose",
            "court",
            "/v1/resources/case/C00000020",
            "TRIAL",
            at_trial,
            400,
            "X-Purpose removed by the client: 400 (set headers to {})",
        )
        | {"headers": {"X-Operator-Id": "court-officer-01"}},
        *delivery_examples(data),
        {
            "name": "regulator-checkpoint",
            "client": "regulator",
            "method": "GET",
            "path": "/v1/audit/checkpoint",
            "headers": {},
            "expect_status": 200,
            "note": "the latest signed checkpoint (signed every 2 s in the demo)",
        },
        {
            "name": "regulator-denials",
            "client": "regulator",
            "method": "GET",
            "path": "/v1/audit/entries?decision=deny&limit=20",
            "headers": {},
            "expect_status": 200,
            "note": "denied requests are logged too; this query is itself an entry",
        },
        {
            "name": "policy-versions",
            "client": "policy_admin",
            "method": "GET",
            "path": "/v1/admin/policies/versions",
            "headers": {},
            "expect_status": 200,
            "note": "versioned policy sets; candidates need a second administrator",
        },
        {
            "name": "alerts",
            "client": "regulator",
            "method": "GET",
            "path": "/v1/audit/alerts?threshold=0.5&min_requests=5",
            "headers": {},
            "expect_status": 200,
            "note": "callers whose refused or empty answers cross the threshold (probing)",
        },
        {
            "name": "metrics",
            "client": "prometheus",
            "method": "GET",
            "path": "/metrics",
            "headers": {},
            "expect_status": 200,
            "note": "Prometheus metrics need scope metrics:read (they count requests per agency)",
        },
        {
            "name": "metrics-for-an-exchange-client",
            "client": "court",
            "method": "GET",
            "path": "/metrics",
            "headers": {},
            "expect_status": 403,
            "note": "not for an agency system: 403, and the refusal is an audit entry",
        },
        {
            "name": "me-without-token",
            "client": None,
            "method": "GET",
            "path": "/v1/me",
            "headers": {},
            "expect_status": 401,
            "note": 'no token: 401 with WWW-Authenticate: Bearer error="invalid_token"',
        },
    ]
