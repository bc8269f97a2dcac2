"""A started gateway with console users, and a browser-like client that signs them in."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.auth.keys import KeyStore
from gateway.auth.totp import STEP_SECONDS, _key, hotp
from gateway.auth.users import UserService
from gateway.db import create_db_engine, make_session_factory, session_scope, utcnow
from gateway.deliveries.repository import DeliveryRepository, NewDelivery, new_delivery_id
from gateway.migrate import upgrade
from gateway.settings import Settings
from gateway.sharing.models import SharingApplication
from gateway.sharing.repository import SharingRepository
from tests.conftest import STANDARD_TEST_CLIENTS, make_settings, register_client

BASE = "https://testserver"
PASSWORD = "correct horse battery"
FILE = "permissions/court.yaml"
# name → (display name, agency, scopes, totp)
USERS: dict[str, tuple[str, str, list[str], bool]] = {
    # policy:admin signs in with TOTP only (GATEWAY_CONSOLE_ADMIN_TOTP_REQUIRED, the default).
    "zhang": ("张管理", "ZF640000", ["policy:admin"], True),
    "li": ("李复核", "ZF640000", ["policy:admin"], True),
    "wang": ("王监督", "JC640000", ["audit:read"], False),
    "zhao": ("赵双因素", "ZF640000", ["audit:read"], True),
    "sun": ("孙审核", "GA640104", ["sharing:review"], False),
    "zhou": ("周审核", "FY640104", ["sharing:review"], False),
}


class TotpCodes:
    """The current TOTP codes of the test users, each time step used once (the server takes a
    code once): the steps now-1, now and now+1 are good, then it waits for the next step."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self._last: dict[str, int] = {}

    def code(self, username: str) -> str:
        secret = self.secrets.get(username)
        if secret is None:
            return ""
        # As of 2 s from now: the step is good whether or not the server's clock has moved on.
        ahead = int((time.time() + 2) // STEP_SECONDS)
        step = max(self._last.get(secret, ahead - 2) + 1, ahead - 1)
        if step > ahead:
            time.sleep(max(0.0, (step - 1) * STEP_SECONDS - time.time() + 0.5))
        self._last[secret] = step
        return hotp(_key(secret), step)


TOTP = TotpCodes()
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def add_users(settings: Settings) -> dict[str, str | None]:
    """Register :data:`USERS` as ``gateway users add`` does; their TOTP secrets."""
    engine = create_db_engine(settings.resolved_database_url)
    secrets: dict[str, str | None] = {}
    try:
        with session_scope(make_session_factory(engine)) as session:
            for name, (display, agency, scopes, totp) in USERS.items():
                _, secret = UserService(session).add(
                    username=name,
                    display_name=display,
                    agency=agency,
                    scopes=scopes,
                    password=PASSWORD,
                    totp=totp,
                )
                secrets[name] = secret
                if secret is not None:
                    TOTP.secrets[name] = secret
    finally:
        engine.dispose()
    return secrets


def hidden_fields(html: str) -> dict[str, str]:
    return {name: unescape(value) for name, value in _HIDDEN.findall(html)}


@dataclass
class Console:
    settings: Settings
    client: TestClient
    totp_secrets: dict[str, str | None]
    api_clients: dict[str, Any] = field(default_factory=dict)

    def browser(self, address: str = "testclient") -> TestClient:
        """Another browser (its own cookie jar) on the same app, from ``address``."""
        return TestClient(self.client.app, base_url=BASE, client=(address, 50000))

    def sign_in(
        self,
        client: TestClient,
        username: str,
        password: str = PASSWORD,
        totp: str | None = None,
    ) -> Any:
        """Sign in by the form; ``totp`` None: the user's current code with the right password."""
        page = client.get("/console/signin")  # → /oauth/authorize, the sign-in form
        assert page.status_code == 200, page.text
        form = hidden_fields(page.text)
        if totp is None:
            totp = TOTP.code(username) if password == PASSWORD else ""
        form.update(username=username, password=password, totp=totp)
        return client.post("/oauth/authorize", data=form)

    def signed_in(self, username: str, totp: str | None = None) -> TestClient:
        client = self.browser()  # no lifespan of its own: the app's is running
        response = self.sign_in(client, username, totp=totp)
        assert response.status_code == 200, response.text
        assert str(response.url) == f"{BASE}/console/", response.url
        return client


def start_console(
    tmp: Path, database_url: str | None = None, **overrides: Any
) -> Iterator[Console]:
    settings = make_settings(
        tmp, database_url or f"sqlite:///{tmp / 'gateway.db'}", issuer=BASE, **overrides
    )
    upgrade(settings)
    KeyStore(settings.resolved_keys_path, token_ttl_seconds=settings.token_ttl_seconds).ensure()
    secrets = add_users(settings)
    api = {
        name: register_client(settings, name, agency, scopes)
        for name, (agency, scopes) in STANDARD_TEST_CLIENTS.items()
    }
    with TestClient(create_app(settings), base_url=BASE) as client:
        yield Console(settings, client, secrets, api)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    yield from start_console(tmp_path)


@pytest.fixture
def console_any_db(tmp_path: Path, database_url: str) -> Iterator[Console]:
    yield from start_console(tmp_path, database_url)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def propose(client: object, text_value: str, comment: str) -> object:
    page = client.get(f"/console/policies/propose?file={FILE}")  # type: ignore[attr-defined]
    return client.post(  # type: ignore[attr-defined]
        "/console/policies/propose",
        data={
            "csrf_token": csrf_of(page.text),
            "file": FILE,
            "text": text_value,
            "comment": comment,
        },
    )


def review(client: object, version_id: str, verdict: str, comment: str) -> Any:
    """Open a version's page and post its review form."""
    page = client.get(f"/console/policies/versions/{version_id}")  # type: ignore[attr-defined]
    return client.post(  # type: ignore[attr-defined]
        f"/console/policies/versions/{version_id}/review",
        data={"csrf_token": csrf_of(page.text), "verdict": verdict, "comment": comment},
    )


def current_text(client: object) -> str:
    page = client.get(f"/console/policies/propose?file={FILE}")  # type: ignore[attr-defined]
    match = re.search(r"<textarea[^>]*>(.*?)</textarea>", page.text, re.S)
    assert match
    return unescape(match.group(1))


def insert_application(factory: sessionmaker[Session], *, overdue: bool = False) -> str:
    """A pending conditional-sharing application of the court (FY640104) to the police
    (GA640104), as the sharing service stores one."""
    now = utcnow()
    app_id = str(uuid.uuid4())
    SharingRepository(factory).insert(
        SharingApplication(
            id=app_id,
            created_at=now - timedelta(days=10 if overdue else 0),
            requester_agency="FY640104",
            client_id="court-system",
            operator_id="op-1",
            owner_agency="GA640104",
            resource="person",
            fields=json.dumps(["phone"]),
            record_ids=None,
            purpose="TRIAL",
            case_number="（2025）宁0104刑初1号",
            case_id="C-2025-001",
            reason="核实被告人联系方式",
            days=30,
            status="pending",
            due_at=now + (timedelta(days=-1) if overdue else timedelta(days=5)),
        )
    )
    return app_id


def insert_delivery(
    factory: sessionmaker[Session],
    sender: str,
    recipient: str,
    *,
    overdue: bool = False,
    kind: str = "indictment",
) -> str:
    """A delivery as the delivery service stores one (the console never shows its content)."""
    now = utcnow()
    content = b'{"record": "not shown"}'
    new = NewDelivery(
        id=new_delivery_id(),
        kind=kind,
        from_agency=sender,
        to_agency=recipient,
        case_number="（2025）宁0104刑初1号",
        purpose="PROSECUTION_REVIEW",
        client_id="procuratorate",
        operator_id="officer-7",
        content=content,
        content_sha256=hashlib.sha256(content).hexdigest(),
        created_at=now - timedelta(days=20 if overdue else 0),
        due_at=now + (timedelta(days=-3) if overdue else timedelta(days=7)),
    )
    with session_scope(factory) as session:
        DeliveryRepository(session).create(new, key=new.id, request_sha256="0" * 64, audit_index=0)
    return new.id


def add_users_and_an_application(settings: Settings) -> None:
    """The users, an application to the police, and deliveries of the procuratorate to the
    court (one overdue) and of the court to the police."""
    add_users(settings)
    engine = create_db_engine(settings.resolved_database_url)
    try:
        factory = make_session_factory(engine)
        insert_application(factory)
        insert_delivery(factory, "JC640104", "FY640104", overdue=True)
        insert_delivery(factory, "JC640104", "FY640104")
        insert_delivery(factory, "FY640104", "GA640104", kind="judgment_execution")
    finally:
        engine.dispose()
