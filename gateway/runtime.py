"""What the lifespan builds and every request shares: engines, registries, clients, keys.

Domain packages grow their own parts here (policy set, adapters, audit writer) so
that the app factory owns one object with one shutdown order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from gateway.audit.aggregate import AnonymousRequests, FailedTokenRequests
from gateway.audit.checkpoint import CheckpointSigner
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.service import AuditService
from gateway.audit.writer import AuditWriter
from gateway.auth.clients import ClientRegistry
from gateway.auth.keys import KeyStore
from gateway.auth.passwords import SecretChecker
from gateway.auth.ratelimit import RateLimiter
from gateway.auth.server import GatewayAuthorizationServer
from gateway.auth.tokens import ExternalKeys, TokenIssuer, TokenVerifier
from gateway.console.parts import ConsoleParts
from gateway.deliveries.outbox import OutboxPusher
from gateway.deliveries.service import DeliveryService
from gateway.exchange.service import ExchangeService
from gateway.exchange.upstream import AgencyAdapters
from gateway.observability.metrics import GatewayMetrics
from gateway.policy.admin import PolicyAdministration, PolicyHolder
from gateway.settings import Settings
from gateway.sharing.service import SharingService
from gateway.standard import Standard

__all__ = ["Runtime", "get_runtime", "runtime_of"]


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    keys: KeyStore
    clients: ClientRegistry
    token_issuer: TokenIssuer
    token_verifier: TokenVerifier
    auth_server: GatewayAuthorizationServer
    rate_limiter: RateLimiter
    metrics: GatewayMetrics
    http: httpx2.AsyncClient
    audit_writer: AuditWriter
    audit_service: AuditService
    checkpointer: Checkpointer
    standard: Standard
    catalog: dict[str, Any]
    policy: PolicyHolder
    policy_admin: PolicyAdministration
    adapters: AgencyAdapters
    exchange: ExchangeService
    deliveries: DeliveryService
    # Pushes stored deliveries to the recipients' systems (started by the app's lifespan).
    outbox: OutboxPusher
    anonymous: AnonymousRequests
    token_failures: FailedTokenRequests
    secret_checker: SecretChecker
    external_keys: ExternalKeys | None = None
    policy_imported: bool = False
    # Conditional sharing (issue 16): applications, reviews, grants.
    sharing: SharingService | None = None
    # The web console (issue 17): sessions, failed sign-ins.
    console: ConsoleParts | None = None
    readiness_checks: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = field(
        default_factory=dict
    )

    @property
    def checkpoint_signer(self) -> CheckpointSigner | None:
        """The key that signs checkpoints now (re-read by the checkpointer as it signs)."""
        return self.checkpointer.signer


def runtime_of(connection: HTTPConnection) -> Runtime:
    """The app's runtime, for code that has the request but not the dependency."""
    runtime: Runtime = connection.app.state.runtime
    return runtime


async def get_runtime(connection: HTTPConnection) -> Runtime:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, which costs a
    # thread hand-off (~250 µs here) on every request for one attribute read.
    return runtime_of(connection)
