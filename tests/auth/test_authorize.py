"""The console sign-in's second factor under concurrent writes (gateway/auth/authorize.py).

Found as a flaky browser test in CI: on SQLite a sign-in answered 503 ("database
unavailable") when another connection (the audit writer) committed between the read of the
user and the write of the TOTP step, which were one transaction.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from gateway.auth import authorize
from gateway.auth.totp import STEP_SECONDS, _key, hotp
from gateway.auth.users import UserService
from gateway.db import create_db_engine, make_session_factory, session_scope
from gateway.migrate import upgrade
from tests.conftest import make_settings


def test_a_write_elsewhere_between_the_read_and_the_step_does_not_fail_the_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}")
    upgrade(settings)
    engine = create_db_engine(settings.resolved_database_url)
    other = create_db_engine(settings.resolved_database_url)  # another connection's writes
    try:
        factory = make_session_factory(engine)
        with session_scope(factory) as db:
            _, secret = UserService(db).add(
                username="li", display_name="李复核", agency="ZF640000",
                scopes=["policy:admin"], password="long enough password", totp=True,
            )  # fmt: skip
        assert secret is not None
        code = hotp(_key(secret), int(time.time() // STEP_SECONDS))
        real = authorize.verify_totp

        def verify_while_another_writes(*args: Any, **kwargs: Any) -> int | None:
            with other.begin() as connection:  # committed while the sign-in checks the code
                connection.execute(
                    text("UPDATE human_users SET display_name = display_name || '.'")
                )
            return real(*args, **kwargs)

        monkeypatch.setattr(authorize, "verify_totp", verify_while_another_writes)
        runtime: Any = SimpleNamespace(session_factory=factory)
        assert authorize._second_factor(runtime, "li", code) is True
        assert authorize._second_factor(runtime, "li", code) is False  # still single-use
    finally:
        other.dispose()
        engine.dispose()
