"""Running the Alembic migrations from code (CLI, demo, tests): the only way the schema is made.

On PostgreSQL the migrations run as the tables' **owner** (``GATEWAY_MIGRATION_DATABASE_URL``,
default ``GATEWAY_DATABASE_URL``) and the gateway runs as an **application role** that
:func:`grant_application_role` gives exactly what it needs: SELECT and INSERT on the audit and
policy tables and the delivery events and idempotency keys, UPDATE on the audit tree
head alone (which the database checks on every update), SELECT/INSERT/UPDATE on the client
registry, the conditional-sharing applications and grants, the deliveries and their
outbox; never DELETE, TRUNCATE, ALTER or ownership. Only the owner can drop or disable the
triggers.
"""

from __future__ import annotations

import re

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from gateway.db import create_db_engine
from gateway.settings import Settings

__all__ = [
    "APPEND_ONLY_TABLES",
    "MigrationError",
    "alembic_config",
    "current_revision",
    "grant_application_role",
    "upgrade",
]

# Tables the application may only read and append to.
APPEND_ONLY_TABLES = (
    "audit_entries",
    "audit_nodes",
    "audit_checkpoints",
    "audit_rule_hits",
    "audit_case_refs",
    "policy_versions",
    "policy_proposals",
    "policy_reviews",
    "policy_publications",
    "delivery_events",
    "delivery_idempotency",
)
_GRANTS = {
    **dict.fromkeys(APPEND_ONLY_TABLES, "SELECT, INSERT"),
    "audit_tree_head": "SELECT, UPDATE",
    "oauth_clients": "SELECT, INSERT, UPDATE",
    # Conditional sharing: applications are answered, grants revoked or marked expired.
    "sharing_applications": "SELECT, INSERT, UPDATE",
    "sharing_grants": "SELECT, INSERT, UPDATE",
    # A delivery's status, deadline, answer and receipt change; the outbox row records attempts.
    "deliveries": "SELECT, INSERT, UPDATE",
    "delivery_outbox": "SELECT, INSERT, UPDATE",
    # The web console: people (TOTP step, password), codes marked used, sessions ended.
    "human_users": "SELECT, INSERT, UPDATE",
    "authorization_codes": "SELECT, INSERT, UPDATE",
    "console_sessions": "SELECT, INSERT, UPDATE",
    "alembic_version": "SELECT",
}
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class MigrationError(Exception):
    """The database cannot be set up as asked; the message says why."""


def alembic_config(settings: Settings, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(settings.migrations_dir))
    # configparser interpolates "%": escape it (percent-encoded URL options use it).
    config.set_main_option(
        "sqlalchemy.url", (url or settings.resolved_migration_database_url).replace("%", "%%")
    )
    return config


def upgrade(
    settings: Settings,
    revision: str = "head",
    url: str | None = None,
    *,
    app_role: str | None = None,
) -> None:
    """Migrate (as the owner) and, on PostgreSQL, grant ``app_role`` (default
    ``GATEWAY_DATABASE_APP_ROLE``) its privileges."""
    url = url or settings.resolved_migration_database_url
    role = app_role or settings.database_app_role
    if url.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(settings, url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            if role is not None and connection.dialect.name == "postgresql":
                grant_application_role(connection, role)
    finally:
        engine.dispose()


def grant_application_role(connection: Connection, role: str) -> None:
    """Give ``role`` the application's privileges on the current schema, and nothing more."""
    if not _ROLE.match(role):
        raise MigrationError(f"invalid role name {role!r}: lower-case letters, digits and '_'")
    found = connection.execute(
        text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).first()
    if found is None:
        raise MigrationError(
            f"role {role} does not exist: create it first, e.g. "
            f"CREATE ROLE {role} LOGIN PASSWORD '…'"
        )
    if found.rolsuper or found.rolbypassrls:
        raise MigrationError(
            f"role {role} is a superuser (or bypasses row security): grants mean nothing to it"
        )
    owner = connection.execute(text("SELECT current_user")).scalar_one()
    if role == owner:
        raise MigrationError(
            f"{role} runs the migrations and owns the tables: the application role must be "
            "another role"
        )
    member = connection.execute(
        text("SELECT pg_has_role(:role, current_user, 'MEMBER')"), {"role": role}
    ).scalar_one()
    if member:
        raise MigrationError(
            f"{role} is a member of the owner role {owner}: it could rewrite the log"
        )
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    target = f'"{role}"'
    qualified = f'"{schema}"'
    connection.execute(text(f"GRANT USAGE ON SCHEMA {qualified} TO {target}"))
    # Start from nothing, so that a re-run also takes away what is no longer granted.
    connection.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {qualified} FROM {target}"))
    connection.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {qualified} FROM {target}"))
    for table, privileges in _GRANTS.items():
        connection.execute(text(f'GRANT {privileges} ON {qualified}."{table}" TO {target}'))
    connection.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {qualified} TO {target}"))


def current_revision(settings: Settings) -> str | None:
    engine = create_db_engine(settings.resolved_migration_database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
