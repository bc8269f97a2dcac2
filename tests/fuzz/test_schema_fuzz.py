"""Schema fuzzing: schemathesis against the gateway's live OpenAPI document.

Every operation of ``GET /openapi.json`` is fuzzed with positive and negative cases
(schemathesis' generation), nudged towards values the gateway knows (resource types, record ids
of the sample agency systems, purposes, case numbers, audit indexes, policy files) so that real
upstream calls, real audit queries and real policy candidates happen, not only 4xx. Each case is
sent with a token carrying the scope the operation declares; a second test sends absent, broken
and wrong-scope tokens, a third checks every protected operation's 429. Two state machines
follow links (audit listing → entry → proof; candidate → version → diff/impact/approve/reject).

Every response goes through ``harness.CHECKS``: no 5xx but a documented 502/504 (the audit log
stays up here, so a 503 fails too), status code, content type, headers and body as documented,
every error an RFC 9457 problem with type/title/status/detail/instance/request_id (the token
endpoint's RFC 6749 errors aside), receipts (X-Audit-Index) where docs/exchange.md promises
them. What it found is pinned in test_fuzz_findings.py.

Examples per operation: see tests/fuzz/conftest.py (CI default, ``--fuzz-long``,
``GATEWAY_FUZZ_EXAMPLES``). docs/security.md, "Schema fuzzing", has the long run's result.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, FlakyFailure
from requests.structures import CaseInsensitiveDict
from schemathesis import GenerationMode
from schemathesis.engine.errors import is_inconsistent_replay
from schemathesis.generation.case import Case as _Case
from schemathesis.specs.openapi.checks import negative_data_rejection
from schemathesis.specs.openapi.schemas import OpenApiSchema

from gateway.audit.routes import router as audit_router
from gateway.auth.routes import router as auth_router
from gateway.deliveries.routes import router as deliveries_router
from gateway.exchange.routes import router as exchange_router
from gateway.health.routes import router as health_router
from gateway.policy.admin_routes import router as policy_admin_router
from gateway.sharing.routes import router as sharing_router
from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.exchange.conftest import EXCHANGE_CLIENTS
from tests.fuzz.harness import (
    CHECKS,
    STATUS_COUNTS,
    ScopeNeed,
    TestClientSession,
    route_scopes,
)

pytestmark = pytest.mark.slow

Case = _Case[Any]


def _route_table() -> FastAPI:
    # The routers app.py mounts; test_every_operation_is_fuzzed proves the list is complete.
    app = FastAPI()
    for router in (
        auth_router,
        health_router,
        audit_router,
        exchange_router,
        policy_admin_router,
        sharing_router,
        deliveries_router,
    ):
        app.include_router(router)
    return app


SCOPES: dict[tuple[str, str], ScopeNeed] = route_scopes(_route_table())
OPERATIONS = sorted(SCOPES, key=lambda op: (op[1], op[0]))
ADMIN_PREFIX = "/v1/admin/"

# Who holds each scope (tests/conftest.py, tests/exchange/conftest.py, conftest admin2 and
# prometheus).
SCOPE_HOLDERS = {
    "exchange": ["police", "court", *EXCHANGE_CLIENTS],
    "audit:read": ["regulator"],
    "policy:admin": ["admin"],
    "metrics:read": ["prometheus"],
    "sharing:review": ["court_reviewer"],
}
ALL_CLIENTS = [
    "police", "court", "regulator", "admin", "prometheus", "court_reviewer", *EXCHANGE_CLIENTS,
]  # fmt: skip

# Requests the sample systems and the shipped policies answer with data (see
# tests/exchange/test_exchange_api.py): client, purpose, case index, resource, record id.
GOOD_FETCHES = [
    ("court", "TRIAL", 20, "case", "C00000020"),
    ("court", "TRIAL", 20, "person", "P0000002001"),
    ("court", "TRIAL", 20, "indictment", "IN0000002001"),
    ("prison", "SENTENCE_EXECUTION", 2, "judgment", "JD0000000201"),
    ("procuratorate", "EXECUTION_SUPERVISION", 1, "sentence_execution", "SE0000000101"),
    ("procuratorate", "EXECUTION_SUPERVISION", 6, "community_correction", "CC0000000601"),
    ("justice", "COMMUNITY_CORRECTION", 6, "judgment", "JD0000000601"),
]

# The highest audit receipt seen: audit indexes to ask about are drawn around it.
AUDIT_SIZE = [1]


def _label(op: tuple[str, str]) -> str:
    return f"{op[0]} {op[1]}"


def _record(case: Case, response: Any) -> None:
    STATUS_COUNTS.setdefault(case.operation.label, Counter())[response.status_code] += 1
    receipt = (response.headers.get("x-audit-index") or [""])[0]
    if receipt.isdigit():
        AUDIT_SIZE[0] = max(AUDIT_SIZE[0], int(receipt) + 1)


Links = dict[tuple[str, str, str], dict[str, Any]]


def _load_schema(gateway: Gateway, links: Links | None = None) -> OpenApiSchema:
    response = gateway.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    for (method, path, status), link_map in (links or {}).items():
        target = document["paths"][path][method.lower()]["responses"][status]
        target.setdefault("links", {}).update(link_map)
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=str(gateway.client.base_url))
    return schema


# --- what the gateway knows, to steer generation towards real answers -----------------------


@dataclass(frozen=True)
class Pools:
    resources: list[str]
    purposes: list[str]
    fields: dict[str, list[str]]
    filters: dict[str, dict[str, list[str]]]
    record_ids: dict[str, list[str]]
    case_numbers: dict[int, list[str]]
    agencies: list[str]
    policy_files: dict[str, str]

    @property
    def all_case_numbers(self) -> list[str]:
        return [n for numbers in self.case_numbers.values() for n in numbers]


def _pools(gateway: Gateway, dataset: Dataset) -> Pools:
    standard = gateway.client.app.state.runtime.standard  # type: ignore[attr-defined]
    resources = [r.name for r in standard.resources]
    fields = {r.name: list(r.field_names) for r in standard.resources}
    filters: dict[str, dict[str, list[str]]] = {}
    record_ids: dict[str, list[str]] = {}
    case_numbers: dict[int, list[str]] = {}
    for index in range(0, 60):
        bundle = dataset.case(index)
        numbers = (bundle.case.get("court_case_number"), bundle.case.get("police_case_number"))
        case_numbers[index] = [str(n) for n in numbers if n]
        for resource in standard.resources:
            for record in bundle.records(resource.name)[:2]:
                record_ids.setdefault(resource.name, []).append(str(record[resource.id_field]))
                for name in resource.filterable_fields:
                    value = record.get(name)
                    if isinstance(value, str | int) and not isinstance(value, bool):
                        pool = filters.setdefault(resource.name, {}).setdefault(name, [])
                        if len(pool) < 40:
                            pool.append(str(value))
    admin = gateway.client.app.state.runtime.policy_admin  # type: ignore[attr-defined]
    current = admin.holder.current.version
    policy_files = admin.get_version(current)["files"]
    return Pools(
        resources=resources,
        purposes=[p.code for p in standard.purposes],
        fields=fields,
        filters=filters,
        record_ids=record_ids,
        case_numbers=case_numbers,
        agencies=[a.code for a in standard.agencies],
        policy_files=policy_files,
    )


# Values that broke, or could break, something below the HTTP layer: NUL (PostgreSQL text),
# instants that leave years 1-9999 once in UTC, integers beyond 64 bits, raw UTF-8 in a
# header, broken percent-encoding, path tricks, very long text.
NASTY_TEXT = [
    "\x00",
    "a\x00b",
    "%00",
    "%E5%AE",
    "%FF%FE",
    "..",
    "../../etc/passwd",
    "' OR '1'='1",
    "\u202e\u0000x",
    "𠀀" * 20,
    "Ａ１",
    "x" * 300,
    " ",
    "null",
]
NASTY_HEADER = [
    "%00",
    "%E5%AE",
    "%ZZ",
    "(2021)宁0104刑初123号".encode().decode("latin-1"),  # raw UTF-8 bytes on the wire
    "ÿþ",
    "x" * 300,
    "A6401040000002021019999%00",
    "（2021）宁0104刑初123号".encode().decode("latin-1"),
]
NASTY_DATETIME = [
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2024-02-30T00:00:00Z",
    "2024-01-01T00:00:00",
    "2024-01-01T24:00:00Z",
]
NASTY_INTEGER = [-1, 0, 2**62, 2**62 + 1, 2**63, 2**64, -(2**63) - 1, "1e3", "0x10", "+1"]


def _nasty(data: st.DataObject, parameter: dict[str, Any]) -> Any:
    schema = parameter.get("schema") or {}
    kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    formats = {schema.get("format")} | {s.get("format") for s in schema.get("anyOf", [])}
    if parameter["in"] == "header":
        return data.draw(st.sampled_from(NASTY_HEADER))
    if "date-time" in formats:
        return data.draw(st.sampled_from(NASTY_DATETIME))
    if "integer" in kinds:
        return data.draw(st.sampled_from(NASTY_INTEGER))
    if parameter["in"] == "path":
        # A "/" or ".." would leave the route (the client resolves dot segments).
        return data.draw(st.sampled_from([t for t in NASTY_TEXT if "/" not in t and t != ".."]))
    return data.draw(st.sampled_from(NASTY_TEXT))


def _spice(case: Case, data: st.DataObject) -> None:
    """Now and then put a nasty value (above) into one of the operation's parameters."""
    parameters = case.operation.definition.raw.get("parameters", [])
    if not parameters or not _maybe(data, 0.35):
        return
    parameter = data.draw(st.sampled_from(parameters))
    value = _nasty(data, parameter)
    where = parameter["in"]
    if where == "path":
        case.path_parameters = {**(case.path_parameters or {}), parameter["name"]: value}
    elif where == "query":
        case.query = {**(case.query or {}), parameter["name"]: value}
    elif where == "header":
        _set_header(case, parameter["name"], value)


def _maybe(data: st.DataObject, probability: float = 0.5) -> bool:
    return data.draw(st.integers(0, 99)) < probability * 100


def _steer_exchange(case: Case, data: st.DataObject, pools: Pools) -> str:
    """Put known resources, ids, purposes and cases into an exchange case; returns the client."""
    headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(case.headers or {})
    query = dict(case.query or {})
    client = data.draw(st.sampled_from(SCOPE_HOLDERS["exchange"]))
    if _maybe(data, 0.3):
        client, purpose, index, resource, record_id = data.draw(st.sampled_from(GOOD_FETCHES))
        number = data.draw(st.sampled_from(pools.case_numbers[index]))
        headers.update({"X-Purpose": purpose, "X-Case-Number": quote(number, safe="()")})
        case.path_parameters = {**(case.path_parameters or {}), "resource": resource}
        query.pop("cursor", None)
        query.pop("fields", None)
        if _maybe(data):
            names = data.draw(st.lists(st.sampled_from(pools.fields[resource]), min_size=1))
            query["fields"] = ",".join(names)
        if "record_id" in case.operation.path:
            case.path_parameters["record_id"] = record_id
        else:
            query["case_id"] = f"C{index:08d}"
    else:
        if _maybe(data, 0.7):
            resource = data.draw(st.sampled_from(pools.resources))
            case.path_parameters = {**(case.path_parameters or {}), "resource": resource}
            if "record_id" in case.operation.path and _maybe(data, 0.8):
                ids = pools.record_ids.get(resource) or ["X1"]
                case.path_parameters["record_id"] = data.draw(st.sampled_from(ids))
            if "record_id" not in case.operation.path and pools.filters.get(resource):
                for _ in range(data.draw(st.integers(1, 2))):
                    name = data.draw(st.sampled_from(sorted(pools.filters[resource])))
                    values = pools.filters[resource][name]
                    # filter values go to the agency systems: nasty ones must stop at 422
                    pool = NASTY_TEXT if _maybe(data, 0.2) else values
                    query[name] = data.draw(st.sampled_from(pool))
            if _maybe(data, 0.3):
                names = data.draw(
                    st.lists(st.sampled_from(pools.fields[resource]), min_size=1, max_size=4)
                )
                query["fields"] = ",".join(names)
        if _maybe(data, 0.6):
            headers["X-Purpose"] = data.draw(st.sampled_from(pools.purposes))
        if _maybe(data, 0.5):
            number = data.draw(st.sampled_from(pools.all_case_numbers))
            headers["X-Case-Number"] = quote(number, safe="()")
    case.query = query
    case.headers = headers
    return client


def _around_log_size(data: st.DataObject, least: int) -> int:
    # Scaled after drawing, so what Hypothesis draws does not depend on the log's size.
    permille = data.draw(st.integers(0, 1010))
    return max(least, permille * AUDIT_SIZE[0] // 1000)


def _steer_audit(case: Case, data: st.DataObject, pools: Pools) -> None:
    query = dict(case.query or {})
    if "index" in (case.path_parameters or {}) and _maybe(data, 0.6):
        case.path_parameters = {"index": _around_log_size(data, 0)}
    for name in ("index", "tree_size", "from", "to"):
        if name in query and _maybe(data, 0.6):
            query[name] = _around_log_size(data, 0 if name == "index" else 1)
    if _maybe(data, 0.3):
        query["requester_agency"] = data.draw(st.sampled_from(pools.agencies))
    if _maybe(data, 0.2):
        query["case_number"] = data.draw(st.sampled_from(pools.all_case_numbers))
    case.query = query


def _steer_admin(case: Case, data: st.DataObject, pools: Pools) -> None:
    body = case.body
    if isinstance(body, dict) and "comment" in body and _maybe(data, 0.15):
        body = case.body = {**body, "comment": data.draw(st.sampled_from(NASTY_TEXT))}
    if case.operation.path.endswith("/candidates") and isinstance(body, dict) and _maybe(data):
        # A candidate that may well be valid: the set in force with one file touched.
        path = data.draw(st.sampled_from(sorted(pools.policy_files)))
        note = data.draw(st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=12))
        body = {
            "comment": body.get("comment") or "fuzz",
            "base": "current",
            "files": {path: pools.policy_files[path] + f"\n# fuzz {note}\n"},
        }
        case.body = body
    elif case.operation.path.endswith("/explain") and isinstance(body, dict) and _maybe(data):
        case.body = {
            "request": {
                "requester_agency": data.draw(st.sampled_from(pools.agencies)),
                "resource": data.draw(st.sampled_from(pools.resources)),
                "purpose": data.draw(st.sampled_from(pools.purposes)),
            },
            "records": [],
            "version": "current",
        }


def _token_auth(case: Case, gateway: Gateway, client: str | None, data: st.DataObject) -> None:
    """Send the token endpoint real client credentials (Basic or in the form) half the time."""
    if client is None or not _maybe(data):
        return
    cred = gateway.clients[client]
    if isinstance(case.body, dict) and _maybe(data):
        # a scope the client holds, or none (= all of them)
        scopes = [s for s, holders in SCOPE_HOLDERS.items() if client in holders]
        body = {k: v for k, v in case.body.items() if k != "scope"}
        if scopes and _maybe(data):
            body["scope"] = scopes[0]
        case.body = body
    if isinstance(case.body, dict) and _maybe(data):
        case.body = {**case.body, "client_id": cred.client_id, "client_secret": cred.client_secret}
    else:
        raw = f"{cred.client_id}:{cred.client_secret}".encode()
        _set_header(case, "Authorization", "Basic " + base64.b64encode(raw).decode())


def _set_header(case: Case, name: str, value: str | None) -> None:
    """Set (None: remove) a header by assigning a new container: that is how schemathesis
    notices the edit and re-decides whether the case is still a negative one."""
    headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(case.headers or {})
    headers.pop(name, None)
    if value is not None:
        headers[name] = value
    case.headers = headers


def _authorize(case: Case, token: str | None) -> None:
    _set_header(case, "Authorization", token)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )


def rejects_invalid_input(ctx: Any, response: Any, case: Case) -> bool | None:
    """``negative_data_rejection``, except for a repeated query parameter: FastAPI reads the
    last one, and for the audit filters that is accepted behaviour (the exchange API, whose
    docs say "each parameter at most once", refuses repeats itself)."""
    if any(isinstance(value, list) for value in (case.query or {}).values()):
        return None
    return negative_data_rejection(ctx, response, case)


def _run(case: Case, session: TestClientSession) -> None:
    response = case.call(session=session, base_url=session.base_url)
    _record(case, response)
    checks: list[Any] = list(CHECKS)
    if case.meta is not None and case.meta.generation.mode.is_negative:
        checks.append(rejects_invalid_input)
    case.validate_response(response, checks=checks)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_gateway: Gateway) -> OpenApiSchema:
    return _load_schema(fuzz_gateway)


@pytest.fixture(scope="module")
def admin_schema(admin_fuzz_gateway: Gateway) -> OpenApiSchema:
    return _load_schema(admin_fuzz_gateway)


@pytest.fixture(scope="module")
def pools(fuzz_gateway: Gateway, dataset: Dataset) -> Pools:
    return _pools(fuzz_gateway, dataset)


def _target(op: tuple[str, str], request: pytest.FixtureRequest) -> tuple[Gateway, OpenApiSchema]:
    if op[1].startswith(ADMIN_PREFIX):
        return request.getfixturevalue("admin_fuzz_gateway"), request.getfixturevalue(
            "admin_schema"
        )
    return request.getfixturevalue("fuzz_gateway"), request.getfixturevalue("fuzz_schema")


def _strategy(schema: OpenApiSchema, op: tuple[str, str]) -> st.SearchStrategy[Case]:
    operation = schema[op[1]][op[0]]
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )


# --- the tests -------------------------------------------------------------------------------


def test_every_operation_is_fuzzed(fuzz_schema: OpenApiSchema) -> None:
    live = {
        (method.upper(), path)
        for path, item in fuzz_schema.raw_schema["paths"].items()
        for method in item
    }
    assert live == set(OPERATIONS)
    for op in OPERATIONS:
        declared = fuzz_schema.raw_schema["paths"][op[1]][op[0].lower()].get("security")
        assert bool(declared) == (SCOPES[op] is not None), op


@pytest.mark.parametrize("op", OPERATIONS, ids=_label)
def test_fuzz_with_valid_token(
    op: tuple[str, str],
    request: pytest.FixtureRequest,
    pools: Pools,
    fuzz_examples: int,
) -> None:
    """Every operation, positive and negative cases, with a token of the scope it needs."""
    gateway, schema = _target(op, request)
    session = TestClientSession(gateway.client)
    need = SCOPES[op]

    @_settings(fuzz_examples)
    @given(case=_strategy(schema, op), data=st.data())
    def fuzz(case: Case, data: st.DataObject) -> None:
        client: str | None = None
        if op[1].startswith("/v1/resources/"):
            client = _steer_exchange(case, data, pools)
        elif op[1].startswith("/v1/audit/"):
            _steer_audit(case, data, pools)
        elif op[1].startswith(ADMIN_PREFIX):
            _steer_admin(case, data, pools)
        _spice(case, data)
        if need is not None:
            holders = sorted({c for scope in need for c in SCOPE_HOLDERS[scope]} or ALL_CLIENTS)
            client = client or data.draw(st.sampled_from(holders))
            if op[1].startswith(ADMIN_PREFIX) and op[1].endswith(
                ("/approve", "/reject", "/rollback")
            ):
                client = "admin2"  # maker-checker: not the author of the candidates
            _authorize(case, f"Bearer {gateway.token(client)}")
        elif op == ("POST", "/oauth/token"):
            _token_auth(case, gateway, data.draw(st.sampled_from([None, *ALL_CLIENTS])), data)
        _run(case, session)

    fuzz()


PROTECTED = [op for op in OPERATIONS if SCOPES[op] is not None]


@pytest.mark.parametrize("op", PROTECTED, ids=_label)
def test_fuzz_refused_callers(
    op: tuple[str, str], request: pytest.FixtureRequest, fuzz_examples: int
) -> None:
    """Absent, malformed, foreign and wrong-scope tokens: 401/403 problems, never data."""
    gateway, schema = _target(op, request)
    session = TestClientSession(gateway.client)
    need = SCOPES[op] or frozenset()
    outsiders = [c for c in ALL_CLIENTS if not any(c in SCOPE_HOLDERS[s] for s in need)]
    other_keys = _foreign_token(gateway)

    refusals: list[str | None] = [
        None,
        "Bearer",
        "Bearer not-a-jwt",
        "Basic dXNlcjpwYXNz",
        f"Bearer {other_keys}",
    ]
    if need and outsiders:
        refusals.append(f"Bearer {gateway.token(outsiders[0])}")

    @_settings(max(4, fuzz_examples // 3))
    @given(case=_strategy(schema, op), data=st.data())
    def fuzz(case: Case, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(refusals))
        _authorize(case, token)
        response = case.call(session=session, base_url=session.base_url)
        _record(case, response)
        case.validate_response(response, checks=list(CHECKS))
        if response.status_code in (400, 422) and _body_refused_before_auth(response):
            return
        assert response.status_code in (401, 403), response.text

    fuzz()


def _body_refused_before_auth(response: Any) -> bool:
    """FastAPI reads a JSON body before it resolves dependencies, so a malformed body gets
    400/422 even without a token (only the JSON-body admin routes; reported to their owner).
    Nothing but the body's own syntax is disclosed."""
    body = response.json()
    if body.get("status") == 400:
        return bool(body.get("detail") == "There was an error parsing the body")
    errors = body.get("errors", [])
    return bool(errors) and all(
        str(e.get("field", "")).startswith("body") and e.get("reason") == "JSON decode error"
        for e in errors
    )


def _foreign_token(gateway: Gateway) -> str:
    """A well-formed JWT signed by a key the gateway does not know."""
    header = base64.urlsafe_b64encode(b'{"alg":"EdDSA","kid":"elsewhere"}').rstrip(b"=")
    claims = base64.urlsafe_b64encode(
        b'{"iss":"http://testserver","aud":"zhengfa-gateway","sub":"x","exp":9999999999}'
    ).rstrip(b"=")
    signature = base64.urlsafe_b64encode(bytes(64)).rstrip(b"=")
    return b".".join((header, claims, signature)).decode()


# --- stateful: links between operations ------------------------------------------------------

AUDIT_LINKS: Links = {
    ("GET", "/v1/audit/entries", "200"): {
        "OneEntry": {
            "operationId": "get_entry_v1_audit_entries__index__get",
            "parameters": {"index": "$response.body#/entries/0/index"},
        },
        "NextPage": {
            "operationId": "list_entries_v1_audit_entries_get",
            "parameters": {"cursor": "$response.body#/next_cursor"},
        },
        "ProofOfFirst": {
            "operationId": "inclusion_v1_audit_proofs_inclusion_get",
            "parameters": {"index": "$response.body#/entries/0/index"},
        },
    },
}
ADMIN_LINKS: Links = {
    ("POST", "/v1/admin/policies/candidates", "201"): {
        name: {"operationId": operation, "parameters": {"version_id": "$response.body#/version_id"}}
        for name, operation in {
            "GetCandidate": "get_version_v1_admin_policies_versions__version_id__get",
            "DiffCandidate": "diff_version_v1_admin_policies_versions__version_id__diff_get",
            "ImpactOfCandidate": "impact_v1_admin_policies_versions__version_id__impact_post",
            "ApproveCandidate": "approve_v1_admin_policies_versions__version_id__approve_post",
            "RejectCandidate": "reject_v1_admin_policies_versions__version_id__reject_post",
        }.items()
    },
    ("GET", "/v1/admin/policies/versions", "200"): {
        "GetCurrent": {
            "operationId": "get_version_v1_admin_policies_versions__version_id__get",
            "parameters": {"version_id": "$response.body#/current"},
        },
    },
}


def admin_pools(gateway: Gateway) -> dict[str, str]:
    admin = gateway.client.app.state.runtime.policy_admin  # type: ignore[attr-defined]
    files: dict[str, str] = admin.get_version(admin.holder.current.version)["files"]
    return files


def _state_machine(
    gateway: Gateway,
    links: Links,
    path_regex: str,
    client_for: Callable[[Case], str],
    policy_files: dict[str, str] | None = None,
) -> Any:
    schema = _load_schema(gateway, links).include(path_regex=path_regex)
    session = TestClientSession(gateway.client)
    submitted = [0]

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case) -> None:
            if policy_files and case.operation.path.endswith("/candidates"):
                # About every other candidate is the set in force with one file touched (and a
                # unique note), so the links go on to a real version (approve publishes it).
                # (Which ones depends on the generated body only, not on earlier runs: what a
                # step answers decides which links Hypothesis may follow next.)
                submitted[0] += 1
                if len(repr(case.body)) % 2:
                    path = sorted(policy_files)[len(repr(case.body)) % len(policy_files)]
                    case.body = {
                        "comment": "stateful fuzz",
                        "base": "current",
                        "files": {path: policy_files[path] + f"\n# stateful {submitted[0]}\n"},
                    }

        def call(self, case: Case, **kwargs: Any) -> Any:
            if SCOPES.get((case.method.upper(), case.operation.path)) is not None:
                _authorize(case, f"Bearer {gateway.token(client_for(case))}")
            response = case.call(session=session, base_url=session.base_url)
            _record(case, response)
            return response

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=list(CHECKS))

    return Machine


def _operation_ids_exist(schema: OpenApiSchema, links: Links) -> None:
    ids = {
        op.get("operationId")
        for item in schema.raw_schema["paths"].values()
        for op in item.values()
    }
    for link_map in links.values():
        for link in link_map.values():
            assert link["operationId"] in ids, link["operationId"]


def test_stateful_audit_links(
    fuzz_gateway: Gateway, fuzz_schema: OpenApiSchema, fuzz_examples: int
) -> None:
    _operation_ids_exist(fuzz_schema, AUDIT_LINKS)
    machine = _state_machine(fuzz_gateway, AUDIT_LINKS, r"^/v1/audit/", lambda case: "regulator")
    _run_state_machine(machine, fuzz_examples)


def test_stateful_policy_admin_links(
    admin_fuzz_gateway: Gateway, admin_schema: OpenApiSchema, fuzz_examples: int
) -> None:
    _operation_ids_exist(admin_schema, ADMIN_LINKS)

    def client_for(case: Case) -> str:
        review = re.search(r"/(approve|reject|rollback)$", case.operation.path)
        return "admin2" if review else "admin"

    machine = _state_machine(
        admin_fuzz_gateway, ADMIN_LINKS, r"^/v1/admin/", client_for, admin_pools(admin_fuzz_gateway)
    )
    _run_state_machine(machine, fuzz_examples)


def _run_state_machine(machine: Any, examples: int) -> None:
    """Run ``machine``; start over when Hypothesis finds the run inconsistent.

    The gateways keep their state between scenarios (the log grows, approvals publish), so a
    replayed prefix can answer differently and offer other links: Hypothesis then raises
    ``FlakyStrategyDefinition`` (or asserts in its data tree). Like schemathesis' own runner,
    that means "run again", not a failure; a check failure (``FlakyFailure`` included) is
    reported.
    """
    for _ in range(3):
        try:
            machine.run(settings=_stateful_settings(examples))
            return
        except FlakyFailure:
            raise
        except Flaky:
            continue
        except AssertionError as exc:
            if not is_inconsistent_replay(exc):
                raise


def _stateful_settings(examples: int) -> settings:
    return settings(
        max_examples=max(3, examples // 3),
        stateful_step_count=6,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )


# --- 429: documented wherever a token is checked ---------------------------------------------

# Path parameters that reach the route (the rate limit is checked before they are looked up).
SAMPLE_PATH = {
    "resource": "case",
    "record_id": "C00000020",
    "index": 0,
    "version_id": "sha256:" + "0" * 64,
    "app_id": "00000000-0000-4000-8000-000000000000",
    "delivery_id": "DL" + "0" * 24,
}


@pytest.fixture(scope="module")
def throttled_gateway(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.conftest import started_gateway

    # one request per client, then 429 for the next quarter hour
    with started_gateway(
        tmp_path_factory.mktemp("fuzz-429"), rate_limit_per_second=0.001, rate_limit_burst=1
    ) as gateway:
        gateway.register("admin2", "ZF640000", ["policy:admin"])
        gateway.register("prometheus", "ZF640000", ["metrics:read"])
        gateway.register("court_reviewer", "FY640104", ["sharing:review"])
        yield gateway


@pytest.mark.parametrize("op", PROTECTED, ids=_label)
def test_rate_limited_answers_as_documented(
    op: tuple[str, str], throttled_gateway: Gateway
) -> None:
    gateway = throttled_gateway
    schema = _load_schema(gateway)
    operation = schema[op[1]][op[0]]
    need = SCOPES[op] or frozenset({"exchange"})
    client = sorted({c for scope in need for c in SCOPE_HOLDERS[scope]} & set(gateway.clients))[0]
    token = gateway.token(client)
    gateway.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})  # the one allowed
    path = {name: SAMPLE_PATH[name] for name in re.findall(r"\{(\w+)\}", op[1])}
    headers = {"Authorization": f"Bearer {token}", "X-Purpose": "TRIAL", "X-Operator-Id": "o-1"}
    case = operation.Case(
        path_parameters=path,
        headers=CaseInsensitiveDict(headers),
        query={"index": 0, "tree_size": 1, "from": 1, "to": 1},
    )
    if "requestBody" in operation.definition.raw:
        case.body, case.media_type = {}, "application/json"
    session = TestClientSession(gateway.client)
    response = case.call(session=session, base_url=session.base_url)
    _record(case, response)
    assert response.status_code == 429, response.text
    case.validate_response(response, checks=list(CHECKS))
