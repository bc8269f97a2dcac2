"""Every table's model, imported in one place so that Alembic sees the whole schema."""

from gateway.audit.models import (
    AuditCheckpoint,
    AuditEntry,
    AuditNode,
    AuditRuleHit,
    AuditTreeHead,
)
from gateway.auth.models import OAuthClient
from gateway.auth.user_models import AuthorizationCode, HumanUser
from gateway.console.models import ConsoleSession
from gateway.db import Base
from gateway.deliveries.models import (
    Delivery,
    DeliveryEvent,
    DeliveryIdempotency,
    DeliveryOutbox,
)
from gateway.policy.store import PolicyPublication, PolicyVersion
from gateway.sharing.models import SharingApplication, SharingGrant

__all__ = [
    "AuditCheckpoint",
    "AuditEntry",
    "AuditNode",
    "AuditRuleHit",
    "AuditTreeHead",
    "AuthorizationCode",
    "Base",
    "ConsoleSession",
    "Delivery",
    "DeliveryEvent",
    "DeliveryIdempotency",
    "DeliveryOutbox",
    "HumanUser",
    "OAuthClient",
    "PolicyPublication",
    "PolicyVersion",
    "SharingApplication",
    "SharingGrant",
]
