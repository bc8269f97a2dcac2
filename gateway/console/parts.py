"""What the console adds to the runtime (built by :func:`gateway.console.wiring.attach_console`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.audit.aggregate import FailedSignIns
from gateway.console.sessions import SessionStore

__all__ = ["ConsoleParts"]


@dataclass
class ConsoleParts:
    sessions: SessionStore
    sign_in_failures: FailedSignIns
    # user name → agency code, for the failed sign-in entries (filled as users sign in)
    agencies: dict[str, str] = field(default_factory=dict)
