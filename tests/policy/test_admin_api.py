"""The policy administration API end to end: versions, candidates, maker-checker, publish,
rollback, explain, impact, audit and scopes — on SQLite and PostgreSQL. (Stale candidates,
the freeze and the review of the initial import: test_admin_review.py.)

One exchange-wired gateway is shared per backend (``admin_gateway``); every candidate
carries a nonce comment so its version id is new, and the ``gw`` fixture puts the shipped
set back in force after each test.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.repository import EntryFilter
from gateway.audit.service import AuditService
from gateway.policy.bundle import bundle_from_directory
from gateway.policy.engine import PolicyEngine
from gateway.policy.store import PolicyRepository
from gateway.runtime import Runtime
from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.policy.conftest import POLICIES

BASE = "/v1/admin/policies"
VERSION_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
UNKNOWN_VERSION = "sha256:" + "0" * 64
COURT = "permissions/court.yaml"
COURT_CASE = "(2024)宁0104刑初465号"  # C00000020: at trial, FY640104 handles it
CASE_FILE_RULE = "fy.trial.case-file"  # the court's TRIAL permission on `case`
SHIPPED_FILES = bundle_from_directory(POLICIES)
TEMP = tempfile.gettempdir()  # where bundles are loaded: never named in an answer

# --- helpers ------------------------------------------------------------------------------


def runtime_of(gateway: Gateway) -> Runtime:
    runtime: Runtime = gateway.client.app.state.runtime  # type: ignore[attr-defined]
    return runtime


def in_force(gateway: Gateway) -> str:
    return runtime_of(gateway).policy.current.version


def drop_rule(text: str, rule_id: str) -> str:
    """``text`` without the permission ``rule_id`` (up to the next rule or the end)."""
    pattern = re.compile(rf"  - id: {re.escape(rule_id)}\n(?:(?!  - id: ).*\n)*")
    out, count = pattern.subn("", text)
    assert count == 1, rule_id
    return out


def nonce(files: dict[str, str], path: str = COURT) -> dict[str, str]:
    """The same rules with a fresh comment: a new version id, no rule change."""
    return {**files, path: files[path] + f"# {uuid.uuid4().hex}\n"}


def without_case_file(files: dict[str, str] | None = None) -> dict[str, str]:
    files = dict(files or SHIPPED_FILES)
    return nonce({**files, COURT: drop_rule(files[COURT], CASE_FILE_RULE)})


def submit(
    gw: Gateway,
    files: dict[str, Any],
    *,
    who: str = "admin",
    comment: str = "test change",
    base: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"comment": comment, "files": files}
    if base is not None:
        body["base"] = base
    return gw.client.post(f"{BASE}/candidates", json=body, headers=gw.auth(who))


def submitted(gw: Gateway, files: dict[str, Any], **kw: Any) -> str:
    response = submit(gw, files, **kw)
    assert response.status_code == 201, response.text
    version_id: str = response.json()["version_id"]
    return version_id


def review(gw: Gateway, version_id: str, verb: str, who: str = "approver") -> httpx.Response:
    return gw.client.post(
        f"{BASE}/versions/{version_id}/{verb}", json={"comment": f"{verb}d"}, headers=gw.auth(who)
    )


def rollback(gw: Gateway, version_id: str, who: str = "admin") -> httpx.Response:
    """Propose ``version_id`` again: a candidate (201) until another administrator approves."""
    return gw.client.post(
        f"{BASE}/rollback",
        json={"version_id": version_id, "comment": "restore"},
        headers=gw.auth(who),
    )


def restore(gw: Gateway, version_id: str, who: str = "admin", checker: str = "approver") -> None:
    """A rollback proposed by ``who`` (unless one is pending) and approved by ``checker``: in
    force afterwards."""
    if version(gw, version_id)["status"] != "candidate":
        proposed = rollback(gw, version_id, who)
        assert proposed.status_code == 201, proposed.text
    approved = review(gw, version_id, "approve", who=checker)
    assert approved.status_code == 200, approved.text


def publish(gw: Gateway, files: dict[str, Any]) -> str:
    version_id = submitted(gw, files)
    response = review(gw, version_id, "approve")
    assert response.status_code == 200, response.text
    return version_id


def versions(gw: Gateway) -> dict[str, Any]:
    response = gw.client.get(f"{BASE}/versions", headers=gw.auth("admin"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def version(gw: Gateway, version_id: str) -> dict[str, Any]:
    response = gw.client.get(f"{BASE}/versions/{version_id}", headers=gw.auth("admin"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_counts(gw: Gateway) -> tuple[int, int]:
    """(versions, publications) straight from the database, without an audited read."""
    from sqlalchemy.orm import Session

    with Session(runtime_of(gw).engine) as session:
        repository = PolicyRepository(session)
        return len(repository.versions()), len(repository.publications(10_000))


def entry(gw: Gateway, index: int | str) -> dict[str, Any]:
    document: dict[str, Any] = AuditService(runtime_of(gw).engine).entry(int(index)).document
    return document


def admin_entries(gw: Gateway, after: int | None = None) -> list[dict[str, Any]]:
    views, _ = AuditService(runtime_of(gw).engine).entries(
        EntryFilter(kind="policy_admin"), after=after, limit=10_000
    )
    return [v.document for v in views]


def last_index(gw: Gateway) -> int:
    views, _ = AuditService(runtime_of(gw).engine).entries(EntryFilter(), after=None, limit=100_000)
    return views[-1].index if views else -1


def court_reads_case(gw: Gateway) -> httpx.Response:
    return gw.client.get(
        "/v1/resources/case/C00000020", headers=exchange_headers(gw, "court", "TRIAL", COURT_CASE)
    )


def explain(gw: Gateway, request: Any, **kw: Any) -> httpx.Response:
    return gw.client.post(
        f"{BASE}/explain", json={"request": request, **kw}, headers=gw.auth("admin")
    )


EXPLAIN_REQUEST = {
    "requester_agency": "FY640104",
    "resource": "case",
    "purpose": "TRIAL",
    "operator_id": "op-1",
    "case_number": COURT_CASE,
    "case": {
        "case_id": "C00000020",
        "handling_agencies": ["FY640104"],
        "stage": "TRIAL",
        "secrecy_mark": "NONE",
    },
    "fields": ["case_id", "case_name"],
}


@pytest.fixture
def gw(admin_gateway: Gateway, shipped_engine: PolicyEngine) -> Iterator[Gateway]:
    assert in_force(admin_gateway) == shipped_engine.version
    yield admin_gateway
    if in_force(admin_gateway) != shipped_engine.version:
        restore(admin_gateway, shipped_engine.version)


# --- startup ------------------------------------------------------------------------------


def test_startup_imports_the_shipped_files_once(
    gateway: Gateway, shipped_engine: PolicyEngine
) -> None:
    def initial_entries() -> list[dict[str, Any]]:
        return [e for e in admin_entries(gateway) if e["action"]["action"] == "initial"]

    assert runtime_of(gateway).policy_imported is True
    listing = versions(gateway)
    assert listing["current"] == shipped_engine.version == in_force(gateway)
    [only] = listing["versions"]
    assert only["version_id"] == shipped_engine.version
    # in force, but nobody reviewed the files: "imported" until an administrator approves
    assert (only["status"], only["kind"], only["author"]) == ("imported", "initial", "system:files")
    assert only["reviewer"] is None
    assert only["created_at"]
    assert only["comment"]
    [publication] = listing["publications"]
    assert (publication["kind"], publication["version_id"]) == ("initial", only["version_id"])
    shown = version(gateway, only["version_id"])
    assert shown["files"] == SHIPPED_FILES
    assert shown["intact"] is True
    [initial] = initial_entries()
    assert initial["action"]["version_id"] == shipped_engine.version
    assert initial["requester"]["client_id"] == "system:files"

    # a second start on the same database follows the publication, imports nothing
    with TestClient(create_app(gateway.settings)) as second:
        runtime: Runtime = second.app.state.runtime  # type: ignore[attr-defined]
        assert runtime.policy_imported is False
        assert runtime.policy.current.version == shipped_engine.version
    assert stored_counts(gateway) == (1, 1)
    assert len(initial_entries()) == 1


# --- candidates ---------------------------------------------------------------------------


def test_submit_a_candidate_lists_diffs_and_refuses_the_same_content_twice(
    gw: Gateway, shipped_engine: PolicyEngine
) -> None:
    current = versions(gw)["current"]
    files = version(gw, current)["files"]
    candidate = without_case_file(files)
    response = submit(gw, candidate, comment="court no longer reads case files")
    assert response.status_code == 201, response.text
    body = response.json()
    version_id = body["version_id"]
    assert VERSION_ID.match(version_id)
    assert version_id != current
    assert body["status"] == "candidate"
    assert body["diff"]["removed"] == [CASE_FILE_RULE]
    assert body["diff"]["added"] == body["diff"]["changed"] == []
    assert body["diff"]["old_version"] == current
    assert body["tests"]["failed"] == 0
    assert body["tests"]["passed"] > 0
    assert isinstance(body["audit_index"], int)
    assert in_force(gw) == shipped_engine.version  # a candidate is not in force

    listed = {v["version_id"]: v for v in versions(gw)["versions"]}[version_id]
    admin_id = gw.clients["admin"].client_id
    assert (listed["status"], listed["author"]) == ("candidate", admin_id)
    assert listed["comment"] == "court no longer reads case files"
    assert listed["created_at"]
    assert version(gw, version_id)["files"] == candidate

    diff = gw.client.get(f"{BASE}/versions/{version_id}/diff", headers=gw.auth("admin"))
    assert diff.status_code == 200
    assert diff.json()["removed"] == [CASE_FILE_RULE]
    reverse = gw.client.get(
        f"{BASE}/versions/{current}/diff", params={"against": version_id}, headers=gw.auth("admin")
    )
    assert reverse.json()["added"] == [CASE_FILE_RULE]
    assert reverse.json()["removed"] == []

    again = submit(gw, candidate)
    assert again.status_code == 409
    assert version_id in again.json()["detail"]


def test_a_changed_attribute_shows_in_the_diff(gw: Gateway) -> None:
    court = SHIPPED_FILES[COURT]
    old = "legal_basis: 刑事诉讼法 第227条以下（第二审程序）"
    assert court.count(old) == 1
    files = nonce({**SHIPPED_FILES, COURT: court.replace(old, "legal_basis: 刑事诉讼法 第227条")})
    response = submit(gw, files)
    assert response.status_code == 201, response.text
    [change] = response.json()["diff"]["changed"]
    assert change["rule_id"] == "fy.trial.judgment"
    assert change["changes"] == {
        "legal_basis": {"old": "刑事诉讼法 第227条以下（第二审程序）", "new": "刑事诉讼法 第227条"}
    }
    diff = gw.client.get(
        f"{BASE}/versions/{response.json()['version_id']}/diff", headers=gw.auth("admin")
    )
    assert diff.json()["changed"] == [change]


def _mutate(old: str, new: str, *, count: int = 1) -> str:
    court = SHIPPED_FILES[COURT]
    assert old in court
    return court.replace(old, new, count)


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


BROKEN_YAML = _mutate("  - id: fy.trial.person\n", "  - id: [fy.trial.person\n")
UNKNOWN_FIELD = _mutate("    resource: person\n", "    resource: person\n    colour: red\n")
CEL_ERROR = _mutate(
    "condition: '\"defendant_id\" in request.filters'", "condition: 'request.filters +* 1'"
)
DUPLICATE_ID = _mutate("id: fy.trial.indictment", "id: fy.trial.person")


@pytest.mark.parametrize(
    ("text", "code", "line", "column", "rule_id"),
    [
        # the parser notices the unclosed flow sequence on the next line
        (BROKEN_YAML, "yaml", _line_of(BROKEN_YAML, "  - id: [fy.trial.person") + 1, 12, None),
        (UNKNOWN_FIELD, "schema", _line_of(UNKNOWN_FIELD, "colour"), 13, "fy.trial.person"),
        (CEL_ERROR, "cel-compile", _line_of(CEL_ERROR, "+* 1"), 16, "fy.prior-record.judgment"),
        # the second definition (where fy.trial.indictment was) is the duplicate
        (
            DUPLICATE_ID,
            "duplicate-id",
            _line_of(SHIPPED_FILES[COURT], "id: fy.trial.indictment"),
            9,
            "fy.trial.person",
        ),
    ],
    ids=["broken-yaml", "unknown-field", "cel-compile-error", "duplicate-id"],
)
def test_an_invalid_candidate_is_422_with_file_line_column_and_rule(
    gw: Gateway,
    shipped_engine: PolicyEngine,
    text: str,
    code: str,
    line: int,
    column: int,
    rule_id: str | None,
) -> None:
    before = stored_counts(gw)
    response = submit(gw, {**SHIPPED_FILES, COURT: text})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    problem = next(e for e in errors if e["code"] == code)
    assert problem["file"] == COURT  # the bundle path, never the temporary directory
    assert (problem["line"], problem["column"], problem["rule_id"]) == (line, column, rule_id)
    assert problem["field"] == f"files.{COURT}"
    assert problem["reason"]
    assert "policy-bundle-" not in response.text
    assert TEMP not in response.text
    assert stored_counts(gw) == before
    assert in_force(gw) == shipped_engine.version


def test_a_candidate_whose_policy_tests_fail_is_422_naming_the_case(gw: Gateway) -> None:
    before = stored_counts(gw)
    files = nonce({**SHIPPED_FILES, COURT: drop_rule(SHIPPED_FILES[COURT], "fy.trial.person")})
    response = submit(gw, files)
    assert response.status_code == 422, response.text
    assert "tests fail" in response.json()["detail"]
    failures = response.json()["errors"]
    assert failures
    names = [f["case"] for f in failures]
    assert any("法院为审判读取已封存的未成年人记录" in name for name in names)
    for failure in failures:
        assert failure["field"].startswith("files.tests/")  # the suite file that failed
        assert isinstance(failure["line"], int)
        assert failure["reason"]
    assert "fy.trial.person" in response.text
    assert "policy-bundle-" not in response.text
    assert TEMP not in response.text
    assert stored_counts(gw) == before


@pytest.mark.parametrize(
    "path",
    [
        "../x.yaml",
        "foo/x.yaml",
        "permissions/../../x.yaml",
        "permissions/x.yml",
        "standard/standard.yaml",
    ],
)
def test_a_bad_bundle_path_is_422(gw: Gateway, path: str) -> None:
    before = stored_counts(gw)
    response = submit(gw, {**SHIPPED_FILES, path: "permissions: []\n"})
    assert response.status_code == 422, response.text
    [problem] = response.json()["errors"]
    assert (problem["file"], problem["code"]) == (path, "layout")
    assert stored_counts(gw) == before


def test_base_current_with_one_change_and_one_deletion(gw: Gateway) -> None:
    court = drop_rule(SHIPPED_FILES[COURT], "fy.commutation-parole.execution")
    # the suites gate every change: deleting the only one is refused
    suites = [name for name in SHIPPED_FILES if name.startswith("tests/")]
    ungated = submit(gw, {COURT: court, **dict.fromkeys(suites)}, base="current")
    assert ungated.status_code == 422
    assert "test suite" in ungated.json()["detail"]

    extra = SHIPPED_FILES["tests/flows.yaml"]
    response = submit(gw, {COURT: court, "tests/extra.yaml": extra}, base="current")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["diff"]["removed"] == ["fy.commutation-parole.execution"]
    assert body["tests"]["failed"] == 0
    files = version(gw, body["version_id"])["files"]
    assert files == {**SHIPPED_FILES, COURT: court, "tests/extra.yaml": extra}

    # a null deletes a file of the base version
    trimmed = submit(
        gw,
        {"tests/extra.yaml": None, COURT: court + "\n# trimmed\n"},
        base=body["version_id"],
    )
    assert trimmed.status_code == 201, trimmed.text
    assert "tests/extra.yaml" not in version(gw, trimmed.json()["version_id"])["files"]

    # a null (delete) needs a base; an unknown base is 404
    without_base = submit(gw, {COURT: court, "tests/flows.yaml": None})
    assert without_base.status_code == 422
    assert without_base.json()["errors"][0]["field"] == "files"
    unknown = submit(gw, {COURT: court}, base=UNKNOWN_VERSION)
    assert unknown.status_code == 404


# --- maker-checker and publishing -----------------------------------------------------------


def test_maker_checker_and_the_hot_swap(gw: Gateway, shipped_engine: PolicyEngine) -> None:
    shipped = shipped_engine.version
    before = court_reads_case(gw)
    assert before.status_code == 200, before.text
    assert entry(gw, before.headers["X-Audit-Index"])["policy_version"] == shipped

    version_id = submitted(gw, without_case_file())
    counts = stored_counts(gw)

    own = review(gw, version_id, "approve", who="admin")
    assert own.status_code == 403
    assert "maker-checker" in own.json()["detail"]
    assert version(gw, version_id)["status"] == "candidate"
    assert stored_counts(gw) == counts
    assert in_force(gw) == shipped
    assert court_reads_case(gw).status_code == 200

    approved = review(gw, version_id, "approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["published"] is True
    assert approved.json()["status"] == "approved"
    assert in_force(gw) == version_id  # no restart: the very next request uses it

    after = court_reads_case(gw)
    assert after.status_code == 403, after.text
    denied = entry(gw, after.headers["X-Audit-Index"])
    assert (denied["policy_version"], denied["decision"]) == (version_id, "deny")

    listing = versions(gw)
    assert listing["current"] == version_id
    approver_id = gw.clients["approver"].client_id
    publication = listing["publications"][0]
    assert (publication["version_id"], publication["kind"]) == (version_id, "approval")
    assert publication["published_by"] == approver_id
    shown = version(gw, version_id)
    assert (shown["status"], shown["reviewer"], shown["review_comment"]) == (
        "approved",
        approver_id,
        "approved",
    )
    assert shown["reviewed_at"]

    audited = entry(gw, approved.json()["audit_index"])
    assert audited["kind"] == "policy_admin"
    assert audited["requester"]["client_id"] == approver_id
    assert audited["action"]["action"] == "approve"
    assert audited["action"]["version_id"] == version_id

    twice = review(gw, version_id, "approve")
    assert twice.status_code == 409
    assert stored_counts(gw)[1] == counts[1] + 1  # exactly one publication


def test_reject_publishes_nothing(gw: Gateway, shipped_engine: PolicyEngine) -> None:
    version_id = submitted(gw, without_case_file())
    counts = stored_counts(gw)
    own = review(gw, version_id, "reject", who="admin")
    assert own.status_code == 403
    rejected = review(gw, version_id, "reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["published"] is False
    assert rejected.json()["status"] == "rejected"
    assert version(gw, version_id)["status"] == "rejected"
    assert stored_counts(gw) == counts
    assert in_force(gw) == shipped_engine.version
    assert court_reads_case(gw).status_code == 200
    assert review(gw, version_id, "approve").status_code == 409
    assert review(gw, version_id, "reject").status_code == 409
    assert review(gw, UNKNOWN_VERSION, "approve").status_code == 404


def test_rollback_is_a_candidate_a_second_administrator_approves(
    gw: Gateway, shipped_engine: PolicyEngine
) -> None:
    shipped = shipped_engine.version
    published = publish(gw, without_case_file())
    assert court_reads_case(gw).status_code == 403

    assert rollback(gw, published).status_code == 409  # already in force
    counts = stored_counts(gw)
    proposed = rollback(gw, shipped)
    assert proposed.status_code == 201, proposed.text
    body = proposed.json()
    assert (body["status"], body["kind"], body["published"]) == ("candidate", "rollback", False)
    assert (body["version_id"], body["base"]) == (shipped, published)
    assert body["diff"]["added"] == [CASE_FILE_RULE]
    # one administrator alone changes nothing: the rollback waits for a second one
    assert in_force(gw) == published
    assert stored_counts(gw)[1] == counts[1]
    assert court_reads_case(gw).status_code == 403
    listed = {v["version_id"]: v for v in versions(gw)["versions"]}[shipped]
    assert (listed["status"], listed["kind"], listed["base"]) == (
        "candidate",
        "rollback",
        published,
    )
    assert rollback(gw, shipped).status_code == 409  # one pending proposal per version
    own = review(gw, shipped, "approve", who="admin")
    assert own.status_code == 403
    assert "maker-checker" in own.json()["detail"]
    assert in_force(gw) == published

    approved = review(gw, shipped, "approve")
    assert approved.status_code == 200, approved.text
    assert (approved.json()["kind"], approved.json()["published"]) == ("rollback", True)
    assert in_force(gw) == shipped
    after = court_reads_case(gw)
    assert after.status_code == 200, after.text
    assert entry(gw, after.headers["X-Audit-Index"])["policy_version"] == shipped
    assert versions(gw)["publications"][0]["kind"] == "rollback"
    audited = entry(gw, body["audit_index"])
    assert audited["action"] == {
        "action": "rollback",
        "version_id": shipped,
        "from": published,
        "comment": "restore",
    }
    approval = entry(gw, approved.json()["audit_index"])
    assert (approval["action"]["action"], approval["action"]["kind"]) == ("approve", "rollback")
    assert approval["requester"]["client_id"] == gw.clients["approver"].client_id

    assert rollback(gw, shipped).status_code == 409  # the current one
    candidate = submitted(gw, without_case_file())
    assert rollback(gw, candidate).status_code == 409  # not approved
    assert review(gw, candidate, "reject").status_code == 200
    assert rollback(gw, candidate).status_code == 409  # rejected
    assert rollback(gw, UNKNOWN_VERSION).status_code == 404
    assert in_force(gw) == shipped

    # any earlier approved version can be proposed again; a rejected rollback changes nothing
    assert rollback(gw, published).status_code == 201
    assert review(gw, published, "reject").status_code == 200
    assert in_force(gw) == shipped
    assert version(gw, published)["status"] == "approved"  # it was approved once
    restore(gw, published)
    assert court_reads_case(gw).status_code == 403


# --- explain and impact ----------------------------------------------------------------------


def test_explain_against_current_and_a_candidate(gw: Gateway, shipped_engine: PolicyEngine) -> None:
    current = explain(gw, EXPLAIN_REQUEST)
    assert current.status_code == 200, current.text
    body = current.json()
    assert body["policy_version"] == shipped_engine.version
    assert body["decision"]["outcome"] == "allow"
    assert CASE_FILE_RULE in body["decision"]["rule_ids"]
    assert body["decision"]["permitted_fields"] == ["case_id", "case_name"]
    assert CASE_FILE_RULE in body["rule_sources"]
    assert body["trace"]

    candidate = submitted(gw, without_case_file())
    dry = explain(gw, EXPLAIN_REQUEST, version=candidate)
    assert dry.status_code == 200, dry.text
    assert dry.json()["policy_version"] == candidate
    assert dry.json()["decision"]["outcome"] == "deny"
    assert "default deny" in dry.json()["decision"]["reason"]
    assert in_force(gw) == shipped_engine.version  # a dry run changes nothing

    record = {
        "case_id": "C00000020",
        "case_name": "某案",
        "stage": "TRIAL",
        "secrecy_mark": "NONE",
        "handling_agencies": ["FY640104"],
        "closed_trial": False,
        "work_secret": False,
        "has_sealed_juvenile": False,
    }
    with_records = explain(gw, EXPLAIN_REQUEST, records=[record], version="current")
    [verdict] = with_records.json()["records"]
    assert verdict["released"] is True
    assert verdict["fields"] == ["case_id", "case_name"]

    # values outside the audit log's JSON subset (a float) are still explained
    floats = explain(gw, {**EXPLAIN_REQUEST, "filters": {"amount": 1.5}})
    assert floats.status_code == 200, floats.text

    assert explain(gw, EXPLAIN_REQUEST, version=UNKNOWN_VERSION).status_code == 404


@pytest.mark.parametrize(
    "request_json",
    [
        {"requester_agency": "FY640104", "resource": "case"},  # no purpose
        {**EXPLAIN_REQUEST, "colour": "red"},
        {**EXPLAIN_REQUEST, "requester_agency": "XX000000"},
        {**EXPLAIN_REQUEST, "time": "yesterday"},
        {**EXPLAIN_REQUEST, "case": {"handling_agencies": ["FY640104"]}},
        {**EXPLAIN_REQUEST, "fields": "case_id"},
    ],
    ids=["no-purpose", "unknown-key", "unknown-agency", "bad-time", "case-without-id", "fields"],
)
def test_explain_refuses_a_malformed_request(gw: Gateway, request_json: dict[str, Any]) -> None:
    response = explain(gw, request_json)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "request"


def test_explain_without_a_request_object_is_422(gw: Gateway) -> None:
    response = gw.client.post(f"{BASE}/explain", json={"request": "x"}, headers=gw.auth("admin"))
    assert response.status_code == 422


_JUDGMENT_EXPLAIN = {
    **EXPLAIN_REQUEST,
    "requester_agency": "JY640001",
    "resource": "judgment",
    "purpose": "SENTENCE_EXECUTION",
    "case": {
        "case_id": "C00000020",
        "handling_agencies": ["JY640001"],
        "secrecy_mark": "NONE",
        "stage": "EXECUTION",
    },
    "fields": ["judgment_id", "defendant_name"],
}
# A defendant under witness protection in another case: the judgment's defendant_name mirrors
# the person's name, which the negative list withholds for the prison.
_PROTECTED_DEFENDANT = {
    "person_id": "P1",
    "case_id": "C00000020",
    "role": "DEFENDANT",
    "is_minor": False,
    "juvenile_record_sealed": False,
    "protected_witness": True,
    "sexual_offence_victim": False,
}


def test_explain_takes_subjects_and_refuses_bad_ones(gw: Gateway) -> None:
    record = {
        "judgment_id": "J1", "case_id": "C00000020", "defendant_id": "P1",
        "defendant_name": "某甲",
    }  # fmt: skip
    protected = explain(
        gw, _JUDGMENT_EXPLAIN, records=[record], subjects={"person": [_PROTECTED_DEFENDANT]}
    )
    assert protected.status_code == 200, protected.text
    [verdict] = protected.json()["records"]
    assert verdict["released"] is True
    assert "defendant_name" in verdict["withheld_fields"]
    assert "nl.witness.protected-identity" in verdict["rule_ids"]
    ordinary = {**_PROTECTED_DEFENDANT, "protected_witness": False}
    shown = explain(gw, _JUDGMENT_EXPLAIN, records=[record], subjects={"person": [ordinary]})
    assert shown.json()["records"][0]["released"] is True
    assert "defendant_name" not in shown.json()["records"][0]["withheld_fields"]
    # Without the defendant's record the judgment is concealed: whose it is cannot be told.
    unknown = explain(gw, _JUDGMENT_EXPLAIN, records=[record])
    assert unknown.json()["records"][0]["conceal"] is True
    for subjects, problem in (
        ({"spaceship": [{"id": "X"}]}, "unknown resource type 'spaceship'"),
        ({"person": [{"case_id": "C1"}]}, "every record needs its person_id"),
    ):
        refused = explain(gw, _JUDGMENT_EXPLAIN, records=[record], subjects=subjects)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "subjects"
        assert problem in refused.json()["errors"][0]["reason"]
    no_case = {k: v for k, v in _JUDGMENT_EXPLAIN.items() if k != "case"}
    refused = explain(gw, no_case, subjects={"case_persons": [ordinary]})
    assert refused.status_code == 422
    assert "needs a request with a case" in refused.json()["errors"][0]["reason"]


def test_impact_reports_the_requests_whose_decision_would_change(
    gw: Gateway, dataset: Dataset
) -> None:
    def exchange(client: str, purpose: str, path: str, case_index: int) -> int:
        case_number = dataset.case(case_index).case["court_case_number"]
        response = gw.client.get(path, headers=exchange_headers(gw, client, purpose, case_number))
        return int(response.headers["X-Audit-Index"])

    case_read = exchange("court", "TRIAL", "/v1/resources/case/C00000020", 20)
    person_read = exchange("court", "TRIAL", "/v1/resources/person/P0000002001", 20)
    judgment_read = exchange(
        "prison", "SENTENCE_EXECUTION", "/v1/resources/judgment/JD0000000201", 2
    )
    for index in (case_read, person_read, judgment_read):
        assert entry(gw, index)["decision"] == "allow"

    candidate = submitted(gw, without_case_file())
    response = gw.client.post(
        f"{BASE}/versions/{candidate}/impact", params={"limit": 50}, headers=gw.auth("admin")
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["version_id"] == candidate
    assert report["replayed"] >= 3
    changes = {c["index"]: c for c in report["changes"]}
    assert report["changed"] == len(changes)
    change = changes[case_read]
    assert (change["requester_agency"], change["resource"], change["purpose"]) == (
        "FY640104",
        "case",
        "TRIAL",
    )
    assert change["before"]["outcome"] == "allow"
    assert CASE_FILE_RULE in change["before"]["rule_ids"]
    assert change["after"]["outcome"] == "deny"
    assert change["after"]["fields"] == []
    assert person_read not in changes
    assert judgment_read not in changes
    for other in changes.values():
        assert other["resource"] == "case"
        assert other["requester_agency"] == "FY640104"

    # a candidate with the same rules changes nothing
    same = submitted(gw, nonce(SHIPPED_FILES))
    unchanged = gw.client.post(f"{BASE}/versions/{same}/impact", headers=gw.auth("admin"))
    assert unchanged.json()["changed"] == 0
    assert unchanged.json()["replayed"] >= 3
    missing = gw.client.post(f"{BASE}/versions/{UNKNOWN_VERSION}/impact", headers=gw.auth("admin"))
    assert missing.status_code == 404


# --- the audit trail -------------------------------------------------------------------------


def test_every_admin_action_is_audited(gw: Gateway, shipped_engine: PolicyEngine) -> None:
    shipped = shipped_engine.version
    mark = last_index(gw)
    admin, approver = gw.clients["admin"].client_id, gw.clients["approver"].client_id

    versions(gw)
    version(gw, shipped)
    gw.client.get(f"{BASE}/versions/{shipped}/diff", headers=gw.auth("admin"))
    published = submitted(gw, without_case_file())
    review(gw, published, "approve")
    rejected = submitted(gw, without_case_file(), who="approver")
    review(gw, rejected, "reject", who="admin")
    rollback(gw, shipped)
    review(gw, shipped, "approve")
    explain(gw, EXPLAIN_REQUEST)
    gw.client.post(f"{BASE}/versions/{published}/impact", headers=gw.auth("admin"))

    got = [
        (e["requester"]["client_id"], e["action"]["action"], e["action"].get("version_id"))
        for e in admin_entries(gw, after=mark)
    ]
    assert got == [
        (admin, "list_versions", None),
        (admin, "get_version", shipped),
        (admin, "diff", shipped),
        (admin, "submit", published),
        (approver, "approve", published),
        (approver, "submit", rejected),
        (admin, "reject", rejected),
        (admin, "rollback", shipped),
        (approver, "approve", shipped),
        (admin, "explain", shipped),
        (admin, "impact", published),
    ]
    for document in admin_entries(gw, after=mark):
        assert document["kind"] == "policy_admin"
        assert document["requester"]["agency"] == "ZF640000"
        assert document["policy_version"]


def test_no_change_without_the_audit_log(gw: Gateway, shipped_engine: PolicyEngine) -> None:
    writer = runtime_of(gw).audit_writer
    published = publish(gw, nonce(SHIPPED_FILES))
    candidate = submitted(gw, without_case_file())
    counts = stored_counts(gw)
    writer.stop()
    try:
        response = submit(gw, without_case_file())
        assert response.status_code == 503, response.text
        assert "nothing changed" in response.json()["detail"]
        assert review(gw, candidate, "approve").status_code == 503
        assert review(gw, candidate, "reject").status_code == 503
        assert rollback(gw, shipped_engine.version).status_code == 503
        freeze = gw.client.post(f"{BASE}/freeze", json={"comment": "x"}, headers=gw.auth("admin"))
        assert freeze.status_code == 503
        assert gw.client.get(f"{BASE}/versions", headers=gw.auth("admin")).status_code == 503
        assert stored_counts(gw) == counts
        assert in_force(gw) == published
    finally:
        writer.start()
    assert version(gw, candidate)["status"] == "candidate"
    assert review(gw, candidate, "approve").status_code == 200  # works again
    assert in_force(gw) == candidate


# --- scopes ----------------------------------------------------------------------------------

_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/versions", None),
    ("GET", f"/versions/{UNKNOWN_VERSION}", None),
    ("GET", f"/versions/{UNKNOWN_VERSION}/diff", None),
    ("POST", "/candidates", {"comment": "c", "files": {}}),
    ("POST", f"/versions/{UNKNOWN_VERSION}/approve", {"comment": "c"}),
    ("POST", f"/versions/{UNKNOWN_VERSION}/reject", {"comment": "c"}),
    ("POST", "/rollback", {"version_id": UNKNOWN_VERSION, "comment": "c"}),
    ("POST", "/freeze", {"comment": "c"}),
    ("POST", "/explain", {"request": EXPLAIN_REQUEST}),
    ("POST", f"/versions/{UNKNOWN_VERSION}/impact", None),
]


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("police", 403), ("regulator", 403)])
def test_every_admin_route_needs_the_policy_admin_scope(
    gw: Gateway, token: str | None, status: int
) -> None:
    headers = gw.auth(token) if token else {}
    counts = stored_counts(gw)
    for method, path, body in _ROUTES:
        response = gw.client.request(method, BASE + path, json=body, headers=headers)
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        if status == 403:
            assert "policy:admin" in response.json()["detail"]
            # an identified caller's refusal is an entry: who tried what
            refused = entry(gw, response.headers["X-Audit-Index"])
            assert refused["kind"] == "policy_admin"
            assert refused["requester"]["client_id"] == gw.clients[str(token)].client_id
            assert (refused["status"], refused["decision"]) == (403, "deny")
            assert refused["action"]["action"] == "refused"
            assert refused["action"]["route"] == f"{method} {BASE}{_template(path)}"
            assert refused["action"]["problem"] == "insufficient-scope"
        else:
            assert "X-Audit-Index" not in response.headers  # anonymous: aggregated
    assert stored_counts(gw) == counts


def _template(path: str) -> str:
    return path.replace(UNKNOWN_VERSION, "{version_id}")
