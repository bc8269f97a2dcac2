"""Audit-log fixtures: a migrated database with a running writer, checkpointer and service.

``audit_log`` runs on both backends (it takes ``database_url``). Tamper helpers
modify the tables *behind the triggers' back*, the way an operator with direct
database access could: on PostgreSQL with ``session_replication_role = replica``
(user triggers do not fire), on SQLite by dropping the triggers for the duration
and recreating them.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.checkpoint import CheckpointSigner, parse_verifier
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.service import AuditService
from gateway.audit.verifier import VerifyReport, verify_database
from gateway.audit.writer import AuditWriter
from gateway.auth.keys import KeyStore
from gateway.db import create_db_engine
from gateway.migrate import upgrade
from gateway.policy.admin import PolicyAdministration
from gateway.runtime import Runtime
from gateway.settings import DEFAULT_AUDIT_ORIGIN, Mode, Settings
from gateway.standard import load_standard
from tests.conftest import (
    APP_ROLE,
    STANDARD_TEST_CLIENTS,
    Gateway,
    as_app_role,
    ensure_app_role,
    make_settings,
)

# The Settings default, so that ``gateway audit verify`` (which checks the origin from
# GATEWAY_AUDIT_ORIGIN) accepts checkpoints made by these fixtures.
ORIGIN = DEFAULT_AUDIT_ORIGIN
APPEND_ONLY_TABLES = ("audit_entries", "audit_nodes", "audit_checkpoints", "audit_rule_hits")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def exchange_draft(n: int = 0, **overrides: Any) -> EntryDraft:
    """A plausible exchange entry; ``n`` varies request id and time."""
    values: dict[str, Any] = {
        "kind": AuditKind.EXCHANGE,
        "request_id": f"req-{n:05d}",
        "requester_agency": "GA640104",
        "client_id": "client-police",
        "operator_id": "officer-1",
        "owner_agency": "court",
        "resource": "judgment",
        "record_ids": [f"rec-{n}"],
        "purpose": "CASE_HANDLING",
        "case_number": "(2026)宁0104刑初1号",
        "decision": Decision.ALLOW,
        "status": 200,
        "released": ["case_number", "verdict"],
        "withheld": ["defendant_id_number"],
        "masked": ["defendant_name"],
        "rule_ids": ["allow-court-judgment"],
        "policy_version": "v1",
        "upstream_status": 200,
        "upstream_latency_us": 1000 + n,
        "body_sha256": "ab" * 32,
        "time": T0 + timedelta(minutes=n),
    }
    values.update(overrides)
    return EntryDraft(**values)


# A small, fixed population with known answers for the filters and the statistics.
# (requester, owner, resource, purpose, decision, operator, case, rules, latency, day)
SAMPLE_ROWS: list[tuple[Any, ...]] = [
    ("GA640104", "court", "judgment", "CASE_HANDLING", "allow", "op-a", "C1", ["r1"], 100, 0),
    ("GA640104", "court", "judgment", "CASE_HANDLING", "deny", "op-a", "C1", ["r2"], None, 0),
    ("GA640104", "procuratorate", "indictment", "REVIEW", "allow", "op-b", "C2", ["r1"], 300, 0),
    ("JC640104", "court", "judgment", "REVIEW", "allow", "op-c", "C2", ["r1", "r3"], 200, 1),
    ("JC640104", "police", "case", "CASE_HANDLING", "deny", "op-c", "C3", ["r2", "r3"], None, 1),
    ("JC640104", "police", "case", "CASE_HANDLING", "error", "op-c", "C3", [], 5000, 1),
    ("FY640104", "police", "case", "REVIEW", "allow", "op-d", "C4", ["r4"], 400, 2),
    ("FY640104", "prison", "execution", "REVIEW", "invalid", "op-d", None, [], None, 2),
    ("GA640104", "court", "judgment", "CASE_HANDLING", "allow", "op-a", "C1", ["r1"], 500, 2),
    ("GA640104", "court", "judgment", "CASE_HANDLING", "allow", "op-b", "C5", ["r1"], 600, 2),
]


def sample_drafts() -> list[EntryDraft]:
    drafts = []
    for n, row in enumerate(SAMPLE_ROWS):
        requester, owner, resource, purpose, decision, operator, case, rules, latency, day = row
        drafts.append(
            exchange_draft(
                n,
                requester_agency=requester,
                client_id=f"client-{requester}",
                owner_agency=owner,
                resource=resource,
                purpose=purpose,
                decision=Decision(decision),
                status={"allow": 200, "deny": 403, "error": 502, "invalid": 422}[decision],
                operator_id=operator,
                case_number=case,
                rule_ids=rules,
                upstream_latency_us=latency,
                upstream_status=None if latency is None else 200,
                time=T0 + timedelta(days=day, minutes=n),
            )
        )
    return drafts


@dataclass
class AuditLog:
    """One migrated database with the audit machinery pointed at it."""

    url: str
    engine: Engine
    writer: AuditWriter
    signer: CheckpointSigner
    checkpointer: Checkpointer
    service: AuditService
    extra_engines: list[Engine] = field(default_factory=list)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def verifier_text(self) -> str:
        return self.signer.verifier_text()

    def append(self, *drafts: EntryDraft) -> list[int]:
        """Append in one burst (the writer may group them) and wait for every index."""
        futures = [self.writer.submit(d) for d in drafts]
        return [f.result(timeout=30) for f in futures]

    def fill(self, count: int, start: int = 0) -> list[int]:
        return self.append(*(exchange_draft(start + i) for i in range(count)))

    def checkpoint(self) -> int | None:
        return self.checkpointer.checkpoint_now()

    def verify(self, **kwargs: Any) -> VerifyReport:
        return verify_database(
            self.engine, [parse_verifier(self.verifier_text)], origin=ORIGIN, **kwargs
        )

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def execute(self, sql: str, **params: Any) -> None:
        """Run one statement through the triggers (expected to be refused for changes)."""
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def leaves(self) -> dict[int, bytes]:
        return {r.idx: bytes(r.leaf) for r in self.rows("SELECT idx, leaf FROM audit_entries")}

    def notes(self) -> dict[int, str]:
        return {
            int(r.tree_size): r.note
            for r in self.rows("SELECT tree_size, note FROM audit_checkpoints")
        }

    def tamper(self, *statements: str | tuple[str, dict[str, Any]]) -> None:
        """Run statements with the append-only triggers bypassed, then restore them."""
        with self.engine.begin() as conn:
            if self.is_postgres:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                saved: list[str] = []
            else:
                saved = [
                    row.sql
                    for row in conn.execute(
                        text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
                    )
                ]
                for row in conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                ).all():
                    conn.execute(text(f'DROP TRIGGER "{row.name}"'))
            for statement in statements:
                sql, params = statement if isinstance(statement, tuple) else (statement, {})
                conn.execute(text(sql), params)
            for sql in saved:
                conn.execute(text(sql))

    def new_engine(self) -> Engine:
        engine = create_db_engine(self.url)
        self.extra_engines.append(engine)
        return engine

    def close(self) -> None:
        self.writer.stop()
        for engine in (self.engine, *self.extra_engines):
            engine.dispose()


def migrate(tmp_path: Path, url: str) -> None:
    """Migrate as the owner; on PostgreSQL grant the application role its privileges."""
    postgres = url.startswith("postgresql")
    upgrade(
        Settings(mode=Mode.TEST, data_dir=tmp_path, database_url=url),
        app_role=APP_ROLE if postgres else None,
    )


def open_audit_log(tmp_path: Path, url: str, **writer_options: Any) -> AuditLog:
    """The log's writer runs as the application role (PostgreSQL); ``engine`` is the owner's,
    for the tests that inspect and tamper as a database administrator would."""
    migrate(tmp_path, url)
    engine = create_db_engine(url)
    writer = AuditWriter(as_app_role(url), **writer_options)
    writer.start()
    signer = CheckpointSigner.generate("test-audit")
    return AuditLog(
        url=url,
        engine=engine,
        writer=writer,
        signer=signer,
        checkpointer=Checkpointer(engine, signer, ORIGIN, 3600),
        service=AuditService(engine),
    )


@pytest.fixture
def audit_log(tmp_path: Path, database_url: str) -> Iterator[AuditLog]:
    log = open_audit_log(tmp_path, database_url)
    yield log
    log.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``database_url``, for read-only tests sharing one populated log per module."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('audit') / 'gateway.db'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    ensure_app_role(server)
    schema = f"gw_test_{secrets.token_hex(6)}"
    admin = create_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in server else "?"
    yield f"{server}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="module")
def sample_log(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuditLog]:
    """SAMPLE_ROWS appended and checkpointed; tests must not change it."""
    log = open_audit_log(tmp_path_factory.mktemp("settings"), module_database_url)
    log.append(*sample_drafts())
    log.checkpoint()
    yield log
    log.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text_: str) -> bytes:
    return base64.b64decode(text_, validate=True)


# --- a running gateway for the regulator API ---------------------------------------------------


@dataclass
class AuditGateway:
    """A started app with SAMPLE_ROWS at indices 0-9 and a checkpoint of them."""

    gateway: Gateway

    @property
    def client(self) -> TestClient:
        return self.gateway.client

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.client.app.state.runtime  # type: ignore[attr-defined]
        return runtime

    def auth(self, name: str) -> dict[str, str]:
        return self.gateway.auth(name)

    def client_id(self, name: str) -> str:
        return self.gateway.clients[name].client_id

    def append(self, *drafts: EntryDraft) -> list[int]:
        futures = [self.runtime.audit_writer.submit(d) for d in drafts]
        return [f.result(timeout=30) for f in futures]

    def checkpoint(self) -> int | None:
        return self.runtime.checkpointer.checkpoint_now()

    def size(self) -> int:
        with self.runtime.engine.connect() as conn:
            return int(conn.execute(text("SELECT size FROM audit_tree_head")).scalar_one())

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.runtime.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def verify(self) -> VerifyReport:
        signer = self.runtime.checkpoint_signer
        assert signer is not None
        return verify_database(
            self.runtime.engine, [signer.verifier()], origin=self.runtime.settings.audit_origin
        )


@pytest.fixture(scope="module")
def audit_gateway(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuditGateway]:
    """One started gateway per backend for a test module; tests only ever add entries."""
    tmp = tmp_path_factory.mktemp("audit-gateway")
    settings = make_settings(
        tmp,
        module_database_url,
        checkpoint_interval_seconds=3600,  # checkpoints only when a test asks for one
        rate_limit_burst=100_000,
        rate_limit_per_second=100_000,
    )
    upgrade(settings)
    KeyStore(settings.resolved_keys_path, token_ttl_seconds=settings.token_ttl_seconds).ensure()
    # Publish the shipped policy set before the app starts, so that the app does not log
    # the initial import and the sample rows sit at indices 0-9.
    engine = create_db_engine(settings.resolved_database_url)
    standard = load_standard(settings.policy_dir / "standard")
    PolicyAdministration.bootstrap(engine, standard, settings.policy_dir)
    engine.dispose()
    gateway = Gateway(settings=settings, client=TestClient(create_app(settings)))
    for name, (agency, scopes) in STANDARD_TEST_CLIENTS.items():
        gateway.register(name, agency, scopes)
    with gateway.client:
        started = AuditGateway(gateway)
        assert started.append(*sample_drafts()) == list(range(len(SAMPLE_ROWS)))
        assert started.checkpoint() == len(SAMPLE_ROWS)
        yield started
