"""Building conditional sharing into a runtime, and its background follower."""

from __future__ import annotations

from gateway.runtime import Runtime
from gateway.sharing.calendar import load_calendar
from gateway.sharing.grants import GrantRegistry
from gateway.sharing.repository import SharingRepository
from gateway.sharing.service import SharingService

__all__ = ["CALENDAR_FILE", "attach_sharing"]

CALENDAR_FILE = "calendar/holidays.yaml"


def attach_sharing(runtime: Runtime) -> SharingService:
    """Give the runtime its sharing service, and the exchange the live grants."""
    settings = runtime.settings
    grants = GrantRegistry(
        runtime.session_factory, follow_interval_s=settings.sharing_follow_interval_seconds
    )
    service = SharingService(
        exchange=runtime.exchange,
        repository=SharingRepository(runtime.session_factory),
        grants=grants,
        calendar=load_calendar(settings.policy_dir / CALENDAR_FILE),
        audit=runtime.audit_writer,
        answer_working_days=settings.sharing_answer_working_days,
        max_days=settings.sharing_max_days,
    )
    grants.on_pass = service.record_expiries
    runtime.exchange.grants = grants
    runtime.sharing = service
    return service
