"""/healthz says the process lives; /readyz says whether its dependencies are usable."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from adapters.config import AgencyConfigError, load_agency_configs
from adapters.registry import build_adapters
from gateway.app import create_app
from gateway.auth.keys import KeyStore
from gateway.settings import REPO_ROOT
from sandbox.generator import Dataset
from sandbox.server import serve_in_thread
from sandbox.systems import AGENCY_KINDS, Credentials
from sandbox.systems import create_app as create_sandbox_app
from tests.auth.fixtures import BACKENDS, backend_started_gateway
from tests.conftest import Gateway, make_settings

CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"


@pytest.fixture(scope="module", params=BACKENDS)
def each_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with backend_started_gateway(request, tmp_path_factory) as gateway:
        yield gateway


def test_healthz(each_backend: Gateway) -> None:
    response = each_backend.client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_readyz_when_ready(each_backend: Gateway) -> None:
    response = each_backend.client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "ready"
    checks = body["checks"]
    assert checks["database"] == {"ok": True}
    jwks = each_backend.client.get("/.well-known/jwks.json").json()
    assert checks["signing_key"] == {"ok": True, "kid": jwks["keys"][0]["kid"], "alg": "RS256"}
    assert all(check["ok"] for check in checks.values())


def test_readyz_503_names_the_failed_dependency(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    gateway = make_gateway(f"sqlite:///{db_dir / 'gateway.db'}")
    assert gateway.client.get("/readyz").status_code == 200

    # The signing key file disappears.
    gateway.settings.resolved_keys_path.unlink()
    time.sleep(1.05)  # the key file is looked at at most once a second
    response = gateway.client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not-ready"
    assert body["checks"]["signing_key"]["ok"] is False
    assert "no signing keys" in body["checks"]["signing_key"]["error"]
    assert body["checks"]["database"] == {"ok": True}

    # Then the database goes too.
    shutil.rmtree(db_dir)
    gateway.client.app.state.runtime.engine.dispose()  # type: ignore[attr-defined]
    response = gateway.client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    database = response.json()["checks"]["database"]
    assert database == {"ok": False, "error": "OperationalError"}
    assert str(db_dir) not in response.text  # the reason's class, not internals

    # Liveness depends on neither.
    assert gateway.client.get("/healthz").status_code == 200


def test_app_starts_with_the_database_down_and_reports_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, CLOSED_PORT_URL)
    KeyStore(settings.resolved_keys_path, token_ttl_seconds=settings.token_ttl_seconds).ensure()
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["database"]["ok"] is False


# --- the agency systems are the ones expected ------------------------------------------------


SECRETS = {kind: "health-test-secret" for kind in AGENCY_KINDS}


@pytest.fixture(scope="module")
def sample_systems() -> Iterator[dict[str, str]]:
    """The five sample systems, each answering its own identity in /health."""
    dataset = Dataset(2021, 30)
    with contextlib.ExitStack() as stack:
        urls = {}
        for kind in AGENCY_KINDS:
            app = create_sandbox_app(kind, dataset, Credentials(SECRETS[kind], "gateway"))
            app.state.instance = f"instance-of-{kind}"
            urls[kind] = stack.enter_context(serve_in_thread(app))
        yield urls


def test_readyz_checks_each_agency_system_is_the_one_expected(
    make_gateway: Callable[..., Gateway], sample_systems: dict[str, str]
) -> None:
    identities = {kind: f"instance-of-{kind}" for kind in AGENCY_KINDS}
    gateway = make_gateway(
        upstream_urls=sample_systems, upstream_secrets=SECRETS, upstream_identities=identities
    )
    body = gateway.client.get("/readyz").json()
    assert body["status"] == "ready", body
    for kind in AGENCY_KINDS:
        assert body["checks"]["agency_systems"]["agencies"][kind]["identity"] == "ok"


def test_readyz_refuses_another_system_at_an_agencys_address(
    make_gateway: Callable[..., Gateway], sample_systems: dict[str, str]
) -> None:
    """What a port clash looks like: something answers, but not the system that was started."""
    identities = {kind: f"instance-of-{kind}" for kind in AGENCY_KINDS}
    urls = {**sample_systems, "court": sample_systems["prison"]}  # the prison answers there
    gateway = make_gateway(
        upstream_urls=urls, upstream_secrets=SECRETS, upstream_identities=identities
    )
    response = gateway.client.get("/readyz")
    assert response.status_code == 503
    check = response.json()["checks"]["agency_systems"]
    assert check["ok"] is False
    assert check["errors"] == ["not the expected system: court"]
    assert check["agencies"]["court"] == {"ok": False, "circuit": "closed", "identity": "mismatch"}
    assert check["agencies"]["prison"]["identity"] == "ok"
    assert "instance-of" not in response.text  # identities are not shown on this public route


def test_an_identity_needs_a_place_in_the_health_answer(
    tmp_path: Path, sample_systems: dict[str, str]
) -> None:
    config = load_agency_configs(REPO_ROOT / "adapters" / "agencies")["court"]
    bare = config.model_copy(
        update={"connection": config.connection.model_copy(update={"health_identity_path": None})}
    )
    with pytest.raises(AgencyConfigError, match=r"names no connection\.health_identity_path"):
        build_adapters(tmp_path, secrets={}, configs={"court": bare}, identities={"court": "x"})
    with pytest.raises(AgencyConfigError, match="unknown agencies: atlantis"):
        build_adapters(
            tmp_path, secrets={}, configs={"court": config}, identities={"atlantis": "x"}
        )
