"""The audit trail of policy administration: every step, and every read, is an entry (kind
``policy_admin``), written before the step takes effect: no unaudited change to what may be
shared."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.writer import AuditUnavailable, AuditWriter
from gateway.errors import ServiceUnavailable
from gateway.observability.context import current_request_id

__all__ = ["SYSTEM_AUTHOR", "Actor", "AdminLog"]

SYSTEM_AUTHOR = "system:files"


@dataclass(frozen=True)
class Actor:
    client_id: str
    agency: str


class AdminLog:
    def __init__(self, audit: AuditWriter, policy_version: Callable[[], str]) -> None:
        self.audit = audit
        self._policy_version = policy_version

    def draft(self, actor: Actor, action: str, detail: Mapping[str, Any]) -> EntryDraft:
        return EntryDraft(
            kind=AuditKind.POLICY_ADMIN,
            request_id=current_request_id(),
            requester_agency=actor.agency,
            client_id=actor.client_id,
            decision=Decision.ALLOW,
            status=200,
            policy_version=self._policy_version(),
            action={"action": action, **detail},
        )

    async def record(self, actor: Actor, action: str, detail: Mapping[str, Any]) -> int:
        try:
            return await self.audit.append(self.draft(actor, action, detail))
        except AuditUnavailable as exc:
            raise ServiceUnavailable(
                "the audit log cannot record this change; nothing changed"
            ) from exc

    def record_blocking(self, actor: Actor, action: str, detail: Mapping[str, Any]) -> int:
        """The same from a thread or a command (``gateway db upgrade``)."""
        return self.audit.append_blocking(self.draft(actor, action, detail))
