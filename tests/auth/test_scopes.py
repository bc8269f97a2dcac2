"""Scopes: every scoped route refuses a missing token (401) and a token without its scope (403).

The enumeration walks each route's dependency tree for ``require_scope`` dependencies
(they carry ``required_scope``), so a route added later is covered without editing
this file. Three probe routes built from ``ExchangeClient`` / ``PolicyAdmin`` /
``AuditReader`` are mounted on a real gateway app too, so the list is never empty
and the walker is shown to find what it should.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.auth.clients import ClientError, ClientService
from gateway.auth.deps import AuditReader, ExchangeClient, PolicyAdmin, require_scope
from gateway.auth.scopes import (
    ALL_SCOPES,
    Scope,
    SeparationOfDutiesError,
    check_scope_set,
    never_combined,
)
from gateway.auth.tokens import Principal
from gateway.db import create_db_engine, make_session_factory, session_scope
from tests.auth.fixtures import fresh_name
from tests.auth.helpers import assert_invalid_token, assert_problem
from tests.conftest import Gateway

# --- the probe routes ------------------------------------------------------------------------

probe = APIRouter(prefix="/_probe")


@probe.get("/exchange")
async def probe_exchange(caller: ExchangeClient) -> dict[str, str]:
    return {"client_id": caller.client_id}


@probe.post("/policies/{policy_id}")
async def probe_policy(policy_id: int, caller: PolicyAdmin) -> dict[str, Any]:
    return {"policy_id": policy_id}


async def _nested(caller: AuditReader) -> Principal:
    return caller


@probe.get("/audit/{entry}")
async def probe_audit(entry: str, caller: Annotated[Principal, Depends(_nested)]) -> dict[str, str]:
    return {"entry": entry}


PROBE_SCOPES = {
    "/_probe/exchange": "exchange",
    "/_probe/policies/{policy_id}": "policy:admin",
    "/_probe/audit/{entry}": "audit:read",
}


Requirement = frozenset[str]  # any one of these scopes satisfies it


def _requirements(dependant: Dependant) -> set[Requirement]:
    """Every scope requirement in a dependency tree (``require_any_scope`` gives several)."""
    found: set[Requirement] = set()
    call = dependant.call
    if call is not None and hasattr(call, "required_scope"):
        any_of = getattr(call, "required_scopes", None) or {call.required_scope}
        found.add(frozenset(str(scope) for scope in any_of))
    for sub in dependant.dependencies:
        found |= _requirements(sub)
    return found


@dataclass(frozen=True)
class ScopedRoute:
    path: str
    methods: frozenset[str]
    requirements: frozenset[Requirement]


def _route_views(app: FastAPI) -> Iterator[Any]:
    """Routes with their effective path and dependant, also inside included routers."""
    iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_route_contexts is not None:  # FastAPI keeps included routers unflattened
        yield from iter_route_contexts(app.routes)
    else:
        yield from app.routes


def scoped_routes(app: FastAPI) -> list[ScopedRoute]:
    routes = []
    for view in _route_views(app):
        dependant = getattr(view, "dependant", None)
        if dependant is None:
            continue
        requirements = _requirements(dependant)
        if requirements:
            routes.append(
                ScopedRoute(view.path, frozenset(view.methods or ()), frozenset(requirements))
            )
    return routes


def _concrete_path(path: str) -> str:
    return re.sub(r"\{[^}/]+(:path)?\}", "1", path)


@pytest.fixture(scope="module")
def probed(shared_gateway: Gateway) -> Iterator[tuple[Gateway, TestClient, FastAPI]]:
    """The gateway's own app plus the probe routes, on the same database and keys."""
    app = create_app(shared_gateway.settings)
    app.include_router(probe)
    with TestClient(app) as client:
        yield shared_gateway, client, app


def _client_without(gateway: Gateway, requirement: Requirement) -> str:
    for name, cred in gateway.clients.items():
        if not requirement & set(cred.scopes):
            return name
    raise AssertionError(f"no test client lacks all of {sorted(requirement)}")


def test_walker_finds_the_probe_routes_and_their_scopes(
    probed: tuple[Gateway, TestClient, FastAPI],
) -> None:
    _, _, app = probed
    found = {route.path: route.requirements for route in scoped_routes(app)}
    for path, scope in PROBE_SCOPES.items():
        assert found[path] == {frozenset({scope})}
    assert "/v1/me" not in found  # any valid token will do there
    assert "/healthz" not in found
    assert "/oauth/token" not in found


def test_every_scoped_route_refuses_missing_token_and_missing_scope(
    probed: tuple[Gateway, TestClient, FastAPI],
) -> None:
    gateway, client, app = probed
    real = {route.path for route in scoped_routes(create_app(gateway.settings))}
    routes = scoped_routes(app)
    assert routes
    assert real <= {route.path for route in routes}
    checked = 0
    for route in routes:
        path = _concrete_path(route.path)
        for method in sorted(route.methods - {"HEAD"}):
            kwargs: dict[str, Any] = {} if method in ("GET", "DELETE") else {"json": {}}
            response = client.request(method, path, **kwargs)
            assert_invalid_token(response)

            for requirement in route.requirements:
                lacking = _client_without(gateway, requirement)
                response = client.request(method, path, headers=gateway.auth(lacking), **kwargs)
                body = assert_problem(response, 403, "insufficient-scope")
                named = set(re.split(r"[\s,]+", body["required_scope"]))
                assert named & requirement, (route.path, body)
                challenge = response.headers["www-authenticate"]
                assert challenge.startswith('Bearer error="insufficient_scope"'), challenge
                assert f'scope="{body["required_scope"]}"' in challenge
                checked += 1
    assert checked >= len(PROBE_SCOPES)


def test_probe_routes_accept_the_right_scope(
    probed: tuple[Gateway, TestClient, FastAPI],
) -> None:
    gateway, client, _ = probed
    ok = client.get("/_probe/exchange", headers=gateway.auth("court"))
    assert ok.status_code == 200
    assert ok.json() == {"client_id": gateway.clients["court"].client_id}
    assert client.post("/_probe/policies/7", headers=gateway.auth("admin")).json() == {
        "policy_id": 7
    }
    assert client.get("/_probe/audit/x", headers=gateway.auth("regulator")).status_code == 200
    # The scope check comes before parameter validation: no leak of the route's shape.
    assert_problem(
        client.post("/_probe/policies/not-a-number", headers=gateway.auth("court")),
        403,
        "insufficient-scope",
    )
    assert_invalid_token(client.post("/_probe/policies/not-a-number"))


def test_down_selected_token_loses_the_dropped_scope(
    probed: tuple[Gateway, TestClient, FastAPI],
) -> None:
    gateway, client, _ = probed
    cred = gateway.register(
        fresh_name("dual"), "ZF640000", ["exchange", "audit:read"], force_combined_roles=True
    )
    response = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "exchange"},
        auth=(cred.client_id, cred.client_secret),
    )
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert client.get("/_probe/exchange", headers=headers).status_code == 200
    assert_problem(client.get("/_probe/audit/x", headers=headers), 403, "insufficient-scope")


def test_require_scope_records_its_scope() -> None:
    for scope in Scope:
        dependency = require_scope(scope)
        assert dependency.required_scope == scope  # type: ignore[attr-defined]
        assert dependency.__name__ == f"require_{scope.value.replace(':', '_')}"


# --- separation of duties (GB/T 39477) -------------------------------------------------------


def test_check_scope_set() -> None:
    assert check_scope_set(["exchange", "exchange"]) == ["exchange"]
    # operation, management and audit: one client holds one of them unless forced
    for combined in (
        ["policy:admin", "audit:read"],
        ["policy:admin", "exchange"],
        ["audit:read", "exchange"],
        ["exchange", "policy:admin", "audit:read"],
    ):
        with pytest.raises(SeparationOfDutiesError, match="--force-combined-roles"):
            check_scope_set(combined)
        assert check_scope_set(combined, force=True) == sorted(combined)
    # metrics:read (Prometheus) is no duty: it combines with any of them
    assert check_scope_set(["metrics:read", "exchange"]) == ["exchange", "metrics:read"]
    with pytest.raises(ValueError, match="at least one scope"):
        check_scope_set([])
    with pytest.raises(ValueError, match="unknown scope"):
        check_scope_set(["exchange", "admin"])
    assert (
        frozenset({"exchange", "policy:admin", "audit:read", "metrics:read", "sharing:review"})
        == ALL_SCOPES
    )


def test_a_reviewer_never_holds_exchange_even_when_forced() -> None:
    # The applicant must not approve its own application: never combined, force or not.
    for combined in (["exchange", "sharing:review"], ["exchange", "sharing:review", "audit:read"]):
        for force in (False, True):
            with pytest.raises(SeparationOfDutiesError, match="never held by one client"):
                check_scope_set(combined, force=force)
    assert never_combined(["sharing:review", "exchange"])
    assert not never_combined(["sharing:review", "metrics:read"])
    # sharing:review is a duty of its own: with policy:admin only when forced.
    with pytest.raises(SeparationOfDutiesError, match="--force-combined-roles"):
        check_scope_set(["sharing:review", "policy:admin"])
    assert check_scope_set(["sharing:review", "metrics:read"]) == [
        "metrics:read",
        "sharing:review",
    ]


@pytest.fixture
def client_service(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    from gateway.migrate import upgrade
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'clients.db'}")
    upgrade(settings)
    engine = create_db_engine(settings.resolved_database_url)
    factory = make_session_factory(engine)

    def run(action: Callable[[ClientService], Any]) -> Any:
        with session_scope(factory) as session:
            return action(ClientService(session))

    yield run
    engine.dispose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scopes": ["policy:admin", "audit:read"]}, "different clients"),
        ({"scopes": []}, "at least one scope"),
        ({"scopes": ["root"]}, "unknown scope"),
        ({"agency": "court"}, "invalid agency code"),
        ({"agency": "ga640104"}, "invalid agency code"),
        ({"name": "Court System"}, "invalid client name"),
        ({"name": "x"}, "invalid client name"),
        ({"rate_limit_per_second": 0}, "rate limit must be positive"),
        ({"known_agencies": frozenset({"FY640104"})}, "not in the standard's agency list"),
    ],
)
def test_register_refuses(
    client_service: Callable[..., Any], kwargs: dict[str, Any], message: str
) -> None:
    values: dict[str, Any] = {"name": "ok-client", "agency": "GA640104", "scopes": ["exchange"]}
    values.update(kwargs)
    with pytest.raises(ClientError, match=message):
        client_service(lambda service: service.register(**values))
    assert client_service(lambda service: service.list()) == []  # nothing half-written


def test_register_combined_roles_only_when_forced(client_service: Callable[..., Any]) -> None:
    issued = client_service(
        lambda service: service.register(
            name="superuser",
            agency="ZF640000",
            scopes=["policy:admin", "audit:read"],
            force_combined_roles=True,
        )
    )
    assert issued.scopes == ["audit:read", "policy:admin"]
    with pytest.raises(ClientError, match="exists already"):
        client_service(
            lambda service: service.register(
                name="superuser", agency="ZF640000", scopes=["exchange"]
            )
        )
    assert [c.name for c in client_service(lambda service: service.list())] == ["superuser"]
