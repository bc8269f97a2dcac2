"""Attack matrix, rows L1-L6: what the audit log must show a regulator (docs/security.md),
on SQLite and PostgreSQL. Each test failed before issue 12's fix.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from typing import Any

import pytest

from gateway.audit.entry import criteria_hash
from gateway.audit.service import AuditService
from gateway.auth.clients import ClientService
from gateway.db import create_db_engine, make_session_factory, session_scope
from sandbox.generator import Dataset
from sandbox.people import id_check_char
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.security.conftest import COURT_CASE, fresh_name, register
from tests.security.helpers import aggregated_entries, audit_entry

PERSON_SEARCH = "/v1/resources/person"
CASE_FILE = "/v1/resources/case/C00000020"


def _runtime(gw: Gateway) -> Any:
    return gw.client.app.state.runtime  # type: ignore[attr-defined]


def _regulator(gw: Gateway, path: str, **params: Any) -> Any:
    response = gw.client.get(path, params=params, headers=gw.auth("regulator"))
    assert response.status_code == 200, response.text
    return response


# L1
def test_l01_refused_admin_calls_name_the_caller(both: Gateway) -> None:
    response = both.client.get("/v1/admin/policies/versions", headers=both.auth("court"))
    assert response.status_code == 403
    refused = audit_entry(both, response)
    assert (refused["kind"], refused["status"], refused["decision"]) == (
        "policy_admin",
        403,
        "deny",
    )
    assert refused["requester"]["client_id"] == both.clients["court"].client_id
    assert refused["action"] == {
        "action": "refused",
        "route": "GET /v1/admin/policies/versions",
        "problem": "insufficient-scope",
    }


# L2
def test_l02_a_405_names_the_caller_an_anonymous_one_is_counted(both: Gateway) -> None:
    identified = both.client.delete("/v1/admin/policies/versions", headers=both.auth("admin"))
    assert identified.status_code == 405
    entry = audit_entry(both, identified)
    assert (entry["kind"], entry["status"]) == ("access", 405)
    assert entry["requester"]["client_id"] == both.clients["admin"].client_id
    assert entry["action"]["route"] == "DELETE /v1/admin/policies/versions"
    aggregated_entries(both)  # earlier counts out of the way
    anonymous = both.client.put("/v1/catalog")
    assert anonymous.status_code == 405
    assert "X-Audit-Index" not in anonymous.headers
    [counted] = [
        e for e in aggregated_entries(both) if e["aggregate"]["route"] == "PUT /v1/catalog"
    ]
    assert counted["aggregate"]["statuses"] == {"405": 1}


# L3
def test_l03_refusals_on_v1_me_are_entries(both: Gateway) -> None:
    name = fresh_name("me-refused")
    cred = register(both, name, "FY640104", ["exchange"])
    headers = both.auth(name)
    assert both.client.get("/v1/me", headers=headers).status_code == 200
    engine = create_db_engine(both.settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            ClientService(session).disable(cred.client_id)
    finally:
        engine.dispose()
    refused = both.client.get("/v1/me", headers=headers)
    assert refused.status_code == 401
    entry = audit_entry(both, refused)
    assert (entry["kind"], entry["status"], entry["decision"]) == ("access", 401, "deny")
    assert entry["requester"]["client_id"] == cred.client_id
    assert entry["action"] == {"route": "GET /v1/me", "problem": "invalid-token"}
    aggregated_entries(both)
    anonymous = both.client.get("/v1/me", headers={"Authorization": "Bearer forged.x.y"})
    assert anonymous.status_code == 401
    assert "X-Audit-Index" not in anonymous.headers
    [counted] = [e for e in aggregated_entries(both) if e["aggregate"]["route"] == "GET /v1/me"]
    assert counted["aggregate"]["count"] == 1


def _id_numbers(count: int) -> list[str]:
    numbers = []
    for n in range(count):
        first17 = f"64010419900101{n:03d}"
        numbers.append(first17 + id_check_char(first17))
    return numbers


# L4
def test_l04_search_criteria_show_a_caller_trying_values_one_by_one(both: Gateway) -> None:
    prober = fresh_name("prober")
    register(both, prober, "FY640104", ["exchange"])
    key = _runtime(both).audit_writer.criteria_key
    tried = _id_numbers(25)
    entries = []
    for number in tried:
        response = both.client.get(
            PERSON_SEARCH,
            params={"id_number": number, "limit": 5},
            headers=exchange_headers(both, prober, "TRIAL", COURT_CASE),
        )
        assert response.status_code == 200, response.text
        assert response.json()["records"] == []
        entries.append(audit_entry(both, response))
    for number, entry in zip(tried, entries, strict=True):
        assert entry["search"] == {
            "filters": {"id_number": criteria_hash(key, "id_number", number)},
            "limit": 5,
            "cursor": False,
        }
        assert number not in json.dumps(entry)  # the log never holds the value itself
    assert len({e["search"]["filters"]["id_number"] for e in entries}) == 25

    honest = fresh_name("honest")
    register(both, honest, "FY640104", ["exchange"])
    for _ in range(20):
        read = both.client.get(
            CASE_FILE, headers=exchange_headers(both, honest, "TRIAL", COURT_CASE)
        )
        assert read.status_code == 200
    alerts = _regulator(both, "/v1/audit/alerts", threshold=0.9, min_requests=20).json()
    listed = {a["client_id"]: a for a in alerts["alerts"]}
    prober_id = both.clients[prober].client_id
    assert listed[prober_id]["empty"] == 25
    assert listed[prober_id]["rate"] == 1.0
    assert listed[prober_id]["distinct_search_values"] == {"id_number": 25}
    assert both.clients[honest].client_id not in listed
    # the alert query is itself audited, and needs audit:read
    refused = both.client.get("/v1/audit/alerts", headers=both.auth("court"))
    assert refused.status_code == 403
    assert audit_entry(both, refused)["kind"] == "audit_query"


# L5
def test_l05_a_request_bound_by_one_case_number_is_found_by_the_other(
    both: Gateway, dataset: Dataset
) -> None:
    case = dataset.case(20).case
    police, court = case["police_case_number"], case["court_case_number"]
    assert court == COURT_CASE
    operator = fresh_name("officer")
    response = both.client.get(
        CASE_FILE, headers=exchange_headers(both, "court", "TRIAL", police, operator=operator)
    )
    assert response.status_code == 200, response.text
    index = int(response.headers["X-Audit-Index"])
    entry = audit_entry(both, response)
    assert entry["case_number"] == police
    assert entry["case_numbers"] == {"court": court, "police": police}
    for number in (court, police):
        found = _regulator(both, "/v1/audit/entries", case_number=number, operator_id=operator)
        assert [e["index"] for e in found.json()["entries"]] == [index]
    assert _runtime(both).audit_service is not None
    assert AuditService(_runtime(both).engine).entry(index).document["case_numbers"]["court"]


# L6
@pytest.mark.parametrize(
    ("resource", "request_id"),
    # a request id the caller chooses may start with "-" (X-Request-Id: [A-Za-z0-9._:-]{8,64})
    [("=cmd|' C calc'!A0", "-2-3-cmd-calc"), ("@SUM(1+1)", "-request-1234")],
)
def test_l06_csv_export_neutralises_formulas_jsonl_stays_exact(
    both: Gateway, resource: str, request_id: str
) -> None:
    operator = fresh_name("csv-probe")
    headers = {**exchange_headers(both, "court", "TRIAL", operator=operator)}
    headers["X-Request-Id"] = request_id
    response = both.client.get(f"/v1/resources/{resource}/X1", headers=headers)
    assert response.status_code == 404
    stored = audit_entry(both, response)
    assert (stored["resource"], stored["request_id"]) == (resource, request_id)

    exported = _regulator(both, "/v1/audit/export", format="csv", operator_id=operator).text
    [row] = list(csv.DictReader(io.StringIO(exported)))
    assert row["resource"] == "'" + resource
    assert row["request_id"] == "'" + request_id
    for cell in row.values():
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    # the leaf column is the exact record
    assert json.loads(base64.b64decode(row["leaf"]))["resource"] == resource

    lines = _regulator(both, "/v1/audit/export", format="jsonl", operator_id=operator).text
    [line] = [json.loads(text) for text in lines.splitlines()]
    assert (line["resource"], line["request_id"]) == (resource, request_id)
