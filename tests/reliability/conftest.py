"""Fault-injection fixtures: gateways whose database or agency systems a test can take away.

The gateways here answer like a deployed one (``raise_server_exceptions=False``: an
unhandled error is the 500 a client would see, not a traceback in the test). The
database is prepared (migrations, keys, clients, the published policy set) on its real
URL, while the app may run on another one: through a :class:`TcpProxy` to PostgreSQL,
or on a SQLite file a test makes unreachable, read-only or full.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.checkpoint import load_signer
from gateway.audit.service import AuditService
from gateway.audit.verifier import VerifyReport, verify_database
from gateway.auth.clients import ClientInfo
from gateway.auth.keys import KeyStore
from gateway.auth.tokens import TokenIssuer
from gateway.db import create_db_engine
from gateway.migrate import upgrade
from gateway.policy.admin import PolicyAdministration
from gateway.runtime import Runtime
from gateway.settings import REPO_ROOT, Settings
from gateway.standard import load_standard
from sandbox.generator import Dataset
from sandbox.server import serve_in_thread
from sandbox.systems import create_app as create_sample_system
from tests.conftest import STANDARD_TEST_CLIENTS, Gateway, as_app_role, make_settings
from tests.exchange.conftest import CREDENTIALS, EXCHANGE_CLIENTS, SANDBOX_CASES, SANDBOX_SEED
from tests.reliability.tcp_proxy import TcpProxy

COURT_CASE = "(2024)宁0104刑初465号"  # C00000020: at trial, FY640104 handles it
CASE_PATH = "/v1/resources/case/C00000020"
CASE_SECRET_FIELD = "case_name"  # in every released case record; absent from every problem
AGENCY_KINDS = ("public_security", "procuratorate", "court", "prison", "justice")


@dataclass
class FaultGateway:
    """A started app plus what the tests need to look behind it."""

    gateway: Gateway
    database_url: str  # the real database (not through a proxy): for checks
    indices: list[int] = field(default_factory=list)  # every X-Audit-Index received

    @property
    def client(self) -> TestClient:
        return self.gateway.client

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.gateway.client.app.state.runtime  # type: ignore[attr-defined]
        return runtime

    def read_case(self, client: str = "court") -> Any:
        response = self.client.get(CASE_PATH, headers=case_headers(self.gateway, client))
        if "X-Audit-Index" in response.headers:
            self.indices.append(int(response.headers["X-Audit-Index"]))
        return response

    def entry(self, index: int | str) -> dict[str, Any]:
        engine = create_db_engine(self.database_url)
        try:
            document: dict[str, Any] = AuditService(engine).entry(int(index)).document
            return document
        finally:
            engine.dispose()

    def stored_indices(self) -> list[int]:
        engine = create_db_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT idx FROM audit_entries ORDER BY idx")).all()
                size = conn.execute(text("SELECT size FROM audit_tree_head WHERE id = 1")).scalar()
        finally:
            engine.dispose()
        indices = [int(r.idx) for r in rows]
        assert size == len(indices), f"tree head says {size}, {len(indices)} rows"
        return indices

    def verify(self) -> VerifyReport:
        try:
            settings = self.gateway.settings
            signer = load_signer(settings.resolved_checkpoint_key_path, settings.audit_origin)
            verifiers = [signer.verifier()]
        except (OSError, ValueError):
            verifiers = []  # no usable key: nothing can have been signed
        engine = create_db_engine(self.database_url)
        try:
            return verify_database(engine, verifiers, origin=self.gateway.settings.audit_origin)
        finally:
            engine.dispose()

    def assert_log_whole(self) -> None:
        """Contiguous indices, every received index stored, the whole log verifies."""
        stored = self.stored_indices()
        assert stored == list(range(len(stored)))
        assert set(self.indices) <= set(stored)
        assert len(self.indices) == len(set(self.indices)), "an index was handed out twice"
        report = self.verify()
        assert report.ok, report.problems[:5]


def case_headers(gateway: Gateway, client: str = "court") -> dict[str, str]:
    from tests.exchange.conftest import exchange_headers

    return exchange_headers(gateway, client, "TRIAL", COURT_CASE)


def assert_nothing_released(response: Any) -> None:
    assert response.status_code >= 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert CASE_SECRET_FIELD not in response.text


@pytest.fixture(scope="session")
def sample_systems() -> Iterator[dict[str, str]]:
    """The five sample agency systems (as tests/exchange runs them), URLs by kind."""
    dataset = Dataset(SANDBOX_SEED, SANDBOX_CASES)
    with contextlib.ExitStack() as stack:
        yield {
            kind: stack.enter_context(
                serve_in_thread(
                    create_sample_system(kind, dataset, CREDENTIALS, faults_enabled=True)
                )
            )
            for kind in AGENCY_KINDS
        }


def exchange_overrides(sample_urls: dict[str, str], **overrides: Any) -> dict[str, Any]:
    urls = {**sample_urls, **overrides.pop("upstream_urls", {})}
    secrets = {kind: CREDENTIALS.secret for kind in AGENCY_KINDS}
    return {"upstream_urls": urls, "upstream_secrets": secrets, **overrides}


def prepare_database(settings: Settings) -> Gateway:
    """Migrations, signing keys, the test clients and the published policy set on
    ``settings``' database: what a deployment has before a (re)start."""
    upgrade(settings)
    KeyStore(settings.resolved_keys_path, token_ttl_seconds=settings.token_ttl_seconds).ensure()
    gateway = Gateway(settings=settings, client=None)  # type: ignore[arg-type]
    for name, (agency, scopes) in {**STANDARD_TEST_CLIENTS, **EXCHANGE_CLIENTS}.items():
        gateway.register(name, agency, scopes)
    gateway.register("approver", "ZF640000", ["policy:admin"])  # maker-checker
    engine = create_db_engine(settings.resolved_database_url)
    try:
        standard = load_standard(settings.policy_dir / "standard")
        PolicyAdministration.bootstrap(engine, standard, settings.policy_dir)
    finally:
        engine.dispose()
    return gateway


def mint_tokens(gateway: Gateway) -> None:
    """Tokens signed with the gateway's keys, without its token endpoint (the database may
    be down when the test starts)."""
    settings = gateway.settings
    keys = KeyStore(settings.resolved_keys_path, token_ttl_seconds=settings.token_ttl_seconds)
    issuer = TokenIssuer(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=settings.token_ttl_seconds,
    )
    for name, cred in gateway.clients.items():
        info = ClientInfo(
            client_id=cred.client_id,
            name=cred.name,
            agency=cred.agency,
            scopes=frozenset(cred.scopes),
            disabled=False,
            rate_limit_per_second=None,
            rate_limit_burst=None,
        )
        token = issuer.issue(info, list(cred.scopes))["access_token"]
        gateway._tokens[f"{name}:None"] = token


@contextlib.contextmanager
def running_gateway(
    prepared: Gateway, app_database_url: str | None = None, **overrides: Any
) -> Iterator[FaultGateway]:
    """Start the app on ``app_database_url`` (default: the prepared database), as the
    application role on PostgreSQL."""
    database_url = prepared.settings.resolved_database_url
    app_url = as_app_role(app_database_url) if app_database_url else database_url
    update: dict[str, Any] = {"database_url": app_url, **overrides}
    settings = prepared.settings.model_copy(update=update)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        gateway = Gateway(settings=settings, client=client, clients=prepared.clients)
        mint_tokens(gateway)
        yield FaultGateway(gateway, database_url)


@pytest.fixture
def fault_gateway(
    tmp_path: Path, sample_systems: dict[str, str]
) -> Iterator[Callable[..., FaultGateway]]:
    """Factory: prepare ``database_url`` (migrations, keys, clients, published policies),
    run ``before_start``, then start a gateway on ``app_database_url``."""
    with contextlib.ExitStack() as stack:

        def factory(
            database_url: str | None = None,
            app_database_url: str | None = None,
            *,
            before_start: Callable[[], object] | None = None,
            **overrides: Any,
        ) -> FaultGateway:
            url = database_url or f"sqlite:///{tmp_path / 'gateway.db'}"
            settings = make_settings(
                tmp_path, url, **exchange_overrides(sample_systems, **overrides)
            )
            prepared = prepare_database(settings)
            if before_start is not None:
                before_start()  # e.g. take the database away: a restart during an outage
            return stack.enter_context(running_gateway(prepared, app_database_url))

        yield factory


# --- PostgreSQL behind a proxy ------------------------------------------------------------


def proxied_url(url: str, proxy: TcpProxy) -> str:
    """``url`` with its host:port replaced by the proxy's, and a short connect timeout."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    netloc = parts.netloc.replace(
        f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}"
    )
    separator = "&" if parts.query else "?"
    return parts._replace(netloc=netloc).geturl() + f"{separator}connect_timeout=2"


@pytest.fixture
def postgres_proxy(postgres_server: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgres_server)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    yield proxy
    proxy.close()


# --- the file system under a SQLite database -------------------------------------------


def can_mount_tmpfs() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str = "8m") -> Iterator[Path]:
    """A size-limited tmpfs at ``where`` (needs CAP_SYS_ADMIN); unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_up(directory: Path) -> Path:
    """Write zeros into ``directory`` until its file system is full; the filler file."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
                out.flush()
    return filler


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable for this process (restored afterwards).

    As root, permission bits do not stop a write (CAP_DAC_OVERRIDE), so root uses the
    immutable attribute (``chattr +i``), which does; others use ``chmod 0444``. Either way
    an ``open(O_RDWR)`` fails and SQLite falls back to a read-only connection.
    """
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make {path.name} immutable: {done.stderr.decode().strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=False)
    else:
        mode = path.stat().st_mode
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(mode)


def agencies_with_fast_circuit(target: Path, agency: str = "public_security") -> Path:
    """A copy of the agency files where ``agency``'s circuit opens after 3 failures and
    half-opens after 1 s (the shipped 5 and 10 s would make a slow test)."""
    shutil.copytree(REPO_ROOT / "adapters" / "agencies", target)
    path = target / f"{agency}.yaml"
    body = path.read_text(encoding="utf-8")
    body, n1 = re.subn(r"failure_threshold: \d+", "failure_threshold: 3", body)
    body, n2 = re.subn(r"reset_seconds: \d+", "reset_seconds: 1", body)
    assert n1 == n2 == 1
    path.write_text(body, encoding="utf-8")
    return target
