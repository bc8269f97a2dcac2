"""The demo's example requests, each with the status it must get (tests run them all).

Record ids and case numbers come from the sample systems' deterministic data (seed
2021): case i has the same records whatever the dataset size, so these stay valid.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sandbox.generator import DEFAULT_SEED, Dataset

__all__ = ["demo_examples"]


def _case_number(dataset: Dataset, index: int) -> str:
    number = dataset.case(index).case.get("court_case_number")
    assert isinstance(number, str)
    return number


def _exchange(
    name: str,
    client: str,
    path: str,
    purpose: str,
    case_number: str | None,
    expect_status: int,
    note: str,
) -> dict[str, Any]:
    headers = {"X-Purpose": purpose, "X-Operator-Id": f"{client}-officer-01"}
    if case_number is not None:
        headers["X-Case-Number"] = quote(case_number, safe="()")
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
    in_prison = _case_number(data, 2)  # C00000002, sentence in 银川监狱 (JY640001), 西夏区 court
    corrections = _case_number(data, 6)  # C00000006, community corrections 兴庆区司法局
    supervised = _case_number(data, 1)  # C00000001, in prison; JC640104 supervises
    sealed = _case_number(data, 3)  # C00000003, a sealed juvenile record
    witness = _case_number(data, 5)  # C00000005, a protected witness
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
            "/v1/resources/arrest_review/AR0000002001",
            "INVESTIGATION",
            at_trial,
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
            "allowed: prison ← court (XML upstream) for sentence execution",
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
        _exchange(
            "masked-fields",
            "prison",
            "/v1/resources/person/P0000000201",
            "SENTENCE_EXECUTION",
            in_prison,
            200,
            "allowed with masks: see the response's masked list (negative list)",
        ),
        _exchange(
            "withheld-fields-protected-witness",
            "court",
            "/v1/resources/person/P0000000503",
            "TRIAL",
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
            "justice",
            "/v1/resources/person/P0000000301",
            "COMMUNITY_CORRECTION",
            sealed,
            404,
            "a sealed juvenile record (第286条): indistinguishable from a missing one",
        ),
        _exchange(
            "really-missing",
            "justice",
            "/v1/resources/person/P0000000399",
            "COMMUNITY_CORRECTION",
            sealed,
            404,
            "compare with the previous example",
        ),
        _exchange(
            "exception-lifts-negative-list",
            "court",
            "/v1/resources/person/P0000000301",
            "TRIAL",
            sealed,
            200,
            "the same sealed record for a trial: 司法机关为办案需要 lifts the item",
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
