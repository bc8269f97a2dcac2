"""The request id of the request being served, visible to logs and error bodies."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

__all__ = ["accept_or_new_request_id", "current_request_id", "request_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# A caller may pass its own id for correlation, but only a short, printable one:
# it ends up in logs and audit entries.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def accept_or_new_request_id(incoming: str | None) -> str:
    if incoming and _SAFE_ID.match(incoming):
        return incoming
    return secrets.token_hex(12)


def current_request_id() -> str | None:
    return request_id_var.get()
