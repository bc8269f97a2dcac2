"""Architecture tests: no route reaches agency data without the PDP and the audit writer.

Four fences, each of which a new route that tried to bypass the choke point would hit:

1. Only the exchange package (and the app factory, which wires it) imports ``adapters``.
2. Adapter calls need a ``Clearance``, which only ``ExchangeService`` issues, after the PDP.
3. Every route is declared in ROUTES below with who may call it; a new route fails the
   snapshot until someone classifies it, and every data route must hand the request to
   ``ExchangeService.handle``.
4. At run time, an adapter call without a clearance, or with one for a denied request, fails.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from gateway.app import create_app
from gateway.deliveries import routes as delivery_routes
from gateway.exchange import routes as exchange_routes
from gateway.exchange.upstream import AgencyAdapters, Clearance, UpstreamCall
from gateway.policy.decision import Outcome, RequestDecision
from gateway.settings import REPO_ROOT

GATEWAY = REPO_ROOT / "gateway"

# path → (methods, who may call). "public" needs no token.
ROUTES: dict[str, tuple[frozenset[str], str]] = {
    "/oauth/token": (frozenset({"POST"}), "public"),
    "/.well-known/jwks.json": (frozenset({"GET"}), "public"),
    "/.well-known/oauth-authorization-server": (frozenset({"GET"}), "public"),
    "/v1/me": (frozenset({"GET"}), "any token"),
    "/healthz": (frozenset({"GET"}), "public"),
    "/readyz": (frozenset({"GET"}), "public"),
    "/metrics": (frozenset({"GET"}), "metrics:read"),
    # API documentation pages and the bundle served without its outbound URL (gateway/docs_ui.py)
    "/docs": (frozenset({"GET"}), "public"),
    "/docs/oauth2-redirect": (frozenset({"GET"}), "public"),
    "/redoc": (frozenset({"GET"}), "public"),
    "/docs-assets/redoc.standalone.js": (frozenset({"GET"}), "public"),
    "/v1/catalog": (frozenset({"GET"}), "exchange"),
    "/v1/resources/{resource}/{record_id}": (frozenset({"GET"}), "exchange"),
    "/v1/resources/{resource}": (frozenset({"GET"}), "exchange"),
    "/v1/audit/key": (frozenset({"GET"}), "public"),
    "/v1/audit/checkpoint": (frozenset({"GET"}), "audit:read|exchange"),
    "/v1/audit/entries/{index}": (frozenset({"GET"}), "audit:read"),
    "/v1/audit/proofs/inclusion": (frozenset({"GET"}), "audit:read|exchange"),
    "/v1/audit/proofs/consistency": (frozenset({"GET"}), "audit:read"),
    "/v1/audit/entries": (frozenset({"GET"}), "audit:read"),
    "/v1/audit/export": (frozenset({"GET"}), "audit:read"),
    "/v1/audit/stats": (frozenset({"GET"}), "audit:read"),
    "/v1/audit/alerts": (frozenset({"GET"}), "audit:read"),
    "/v1/admin/policies/versions": (frozenset({"GET"}), "policy:admin"),
    "/v1/admin/policies/versions/{version_id}": (frozenset({"GET"}), "policy:admin"),
    "/v1/admin/policies/versions/{version_id}/diff": (frozenset({"GET"}), "policy:admin"),
    "/v1/admin/policies/candidates": (frozenset({"POST"}), "policy:admin"),
    "/v1/admin/policies/versions/{version_id}/approve": (frozenset({"POST"}), "policy:admin"),
    "/v1/admin/policies/versions/{version_id}/reject": (frozenset({"POST"}), "policy:admin"),
    "/v1/admin/policies/rollback": (frozenset({"POST"}), "policy:admin"),
    "/v1/admin/policies/freeze": (frozenset({"POST"}), "policy:admin"),
    "/v1/admin/policies/explain": (frozenset({"POST"}), "policy:admin"),
    "/v1/admin/policies/versions/{version_id}/impact": (frozenset({"POST"}), "policy:admin"),
    # Conditional sharing (issue 16): no agency data leaves here. An application resolves its
    # case through the exchange's own lookup and asks the PDP; the grants it makes are used by
    # the data routes above, through the PDP.
    "/v1/sharing/applications": (frozenset({"GET", "POST"}), "exchange|sharing:review|audit:read"),
    "/v1/sharing/applications/{app_id}": (
        frozenset({"GET"}),
        "exchange|sharing:review|audit:read",
    ),
    "/v1/sharing/applications/{app_id}/approve": (frozenset({"POST"}), "sharing:review"),
    "/v1/sharing/applications/{app_id}/refuse": (frozenset({"POST"}), "sharing:review"),
    "/v1/sharing/applications/{app_id}/revoke": (frozenset({"POST"}), "sharing:review"),
    "/v1/sharing/stats": (frozenset({"GET"}), "audit:read|sharing:review"),
    # Deliveries (issue 15): every one but the public receipt key is audited through
    # DeliveryService.handle, which decides content through the PDP before storing it.
    "/v1/deliveries": (frozenset({"GET", "POST"}), "exchange"),
    "/v1/deliveries/{delivery_id}": (frozenset({"GET"}), "exchange"),
    "/v1/deliveries/{delivery_id}/receipt": (frozenset({"POST"}), "exchange"),
    "/v1/deliveries/{delivery_id}/extensions": (frozenset({"POST"}), "exchange"),
    "/v1/deliveries/stats": (frozenset({"GET"}), "exchange"),
    "/v1/deliveries/key": (frozenset({"GET"}), "public"),
    # The web console (issue 17): pages for people, with a console session (never a token).
    # No agency data leaves here: the policy pages call PolicyAdministration, the audit pages
    # AuditService, as the API routes above do (tests/console).
    "/oauth/authorize": (frozenset({"GET", "POST"}), "public (sign-in form)"),
    "/console/signin": (frozenset({"GET"}), "public"),
    "/console/callback": (frozenset({"GET"}), "public (code + PKCE verifier)"),
    "/console/signout": (frozenset({"POST"}), "console session"),
    "/console/": (frozenset({"GET"}), "console session"),
    "/console/policies": (frozenset({"GET"}), "console session: policy:admin"),
    "/console/policies/rules/{rule_id}": (frozenset({"GET"}), "console session: policy:admin"),
    "/console/policies/propose": (frozenset({"GET", "POST"}), "console session: policy:admin"),
    "/console/policies/versions/{version_id}": (
        frozenset({"GET"}),
        "console session: policy:admin",
    ),
    "/console/policies/versions/{version_id}/review": (
        frozenset({"POST"}),
        "console session: policy:admin",
    ),
    "/console/policies/versions/{version_id}/impact": (
        frozenset({"POST"}),
        "console session: policy:admin",
    ),
    "/console/policies/history": (frozenset({"GET"}), "console session: policy:admin"),
    "/console/policies/explain": (frozenset({"GET", "POST"}), "console session: policy:admin"),
    "/console/policies/freeze": (frozenset({"POST"}), "console session: policy:admin"),
    "/console/policies/rollback": (frozenset({"POST"}), "console session: policy:admin"),
    "/console/sharing": (frozenset({"GET"}), "console session: sharing:review"),
    "/console/sharing/{app_id}/answer": (frozenset({"POST"}), "console session: sharing:review"),
    # Deliveries: read-only, through DeliveryService.handle (gateway/console/delivery_pages.py).
    "/console/deliveries": (frozenset({"GET"}), "console session: sharing:review"),
    "/console/deliveries/{delivery_id}": (frozenset({"GET"}), "console session: sharing:review"),
    "/console/audit": (frozenset({"GET"}), "console session: audit:read"),
    "/console/audit/stats": (frozenset({"GET"}), "console session: audit:read"),
    "/console/audit/alerts": (frozenset({"GET"}), "console session: audit:read"),
    "/console/audit/export": (frozenset({"GET"}), "console session: audit:read"),
    "/console/audit/entries/{index}": (frozenset({"GET"}), "console session: audit:read"),
    "/console/audit/entries/{index}/proof": (frozenset({"GET"}), "console session: audit:read"),
}
DATA_ROUTES = {"/v1/resources/{resource}/{record_id}", "/v1/resources/{resource}"}
DELIVERY_ROUTES = {p for p, (_, who) in ROUTES.items() if p.startswith("/v1/deliveries")} - {
    "/v1/deliveries/key"
}


def api_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, through FastAPI's included-router wrappers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from api_routes(original.routes, prefix + route.include_context.prefix)


def _modules() -> list[Path]:
    return sorted(p for p in GATEWAY.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_exchange_package_and_the_factory_import_adapters() -> None:
    allowed = {GATEWAY / "app.py", *(GATEWAY / "exchange").glob("*.py")}
    offenders = []
    for path in _modules():
        imported = {n for n in _imports(path) if n.split(".")[0] == "adapters"}
        if imported and path not in allowed:
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == []


def test_clearances_are_issued_only_by_the_exchange_service() -> None:
    issuers = []
    for path in _modules():
        source = path.read_text(encoding="utf-8")
        uses = source.replace("class Clearance:", "")
        if "Clearance.for_decision(" in uses or "Clearance(" in uses:
            issuers.append(path.relative_to(REPO_ROOT).as_posix())
    assert issuers == ["gateway/exchange/service.py"]


def test_every_route_is_classified_and_data_routes_go_through_handle() -> None:
    app = create_app()
    seen: dict[str, frozenset[str]] = {}
    for path, route in api_routes(app.routes):
        seen[path] = seen.get(path, frozenset()) | frozenset(route.methods)
        if path in DATA_ROUTES:
            assert route.endpoint.__module__ == exchange_routes.__name__
            assert "runtime_of(request).exchange.handle(" in inspect.getsource(route.endpoint)
    unclassified = sorted(set(seen) - set(ROUTES))
    assert unclassified == [], f"classify the new route(s) in ROUTES: {unclassified}"
    for path, (methods, _) in ROUTES.items():
        assert seen.get(path) == methods, path
    # Any path in the /v1/resources space is a data route and must be one of the above.
    assert {p for p in seen if p.startswith("/v1/resources")} == DATA_ROUTES


def test_delivery_routes_are_audited_through_the_delivery_service() -> None:
    app = create_app()
    seen = set()
    for path, route in api_routes(app.routes):
        if path.startswith("/v1/deliveries") and path != "/v1/deliveries/key":
            seen.add(path)
            assert route.endpoint.__module__ == delivery_routes.__name__
            assert "service.handle(request, caller," in inspect.getsource(route.endpoint)
    assert seen == DELIVERY_ROUTES


def test_data_routes_declare_the_exchange_scope() -> None:
    app = create_app()
    for path, route in api_routes(app.routes):
        if path in DATA_ROUTES | DELIVERY_ROUTES:
            scopes = {
                getattr(dep.call, "required_scope", None) for dep in route.dependant.dependencies
            }
            assert "exchange" in scopes, path


async def test_adapter_calls_without_a_clearance_fail() -> None:
    adapters = AgencyAdapters({}, case_owner="public_security")
    with pytest.raises(TypeError, match="Clearance"):
        await adapters.fetch(object(), "court", "judgment", "JD1", UpstreamCall())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Clearance"):
        await adapters.search(
            None,  # type: ignore[arg-type]
            "court",
            "judgment",
            {},
            limit=1,
            after=None,
            call=UpstreamCall(),
        )


def test_no_clearance_for_a_denied_request_nor_a_forged_one() -> None:
    denied = RequestDecision(Outcome.DENY, "no permission", (), "v1")
    with pytest.raises(RuntimeError):
        Clearance.for_decision(denied)
    allowed = RequestDecision(Outcome.ALLOW, "ok", ("P1",), "v1")
    with pytest.raises(RuntimeError):
        Clearance(allowed, object())
    assert Clearance.for_decision(allowed).decision is allowed


def test_product_code_does_not_import_the_sample_systems() -> None:
    # Only the demo command starts the sample systems and reads their synthetic data.
    demo_only = {
        GATEWAY / "demo.py",
        GATEWAY / "demo_examples.py",
        GATEWAY / "demo_deliveries.py",
        GATEWAY / "sandbox_runner.py",
    }
    product = [*_modules(), *sorted((REPO_ROOT / "adapters").rglob("*.py"))]
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in product
        if path not in demo_only and any(n.split(".")[0] == "sandbox" for n in _imports(path))
    ]
    assert offenders == []
