"""Callers whose refused or empty-result rate crosses a threshold (``GET /v1/audit/alerts``).

Someone who probes (tries ID numbers one by one, walks record ids, asks for cases it does
not handle) sees mostly refusals and empty answers. Per identified client, over a window of
exchange entries:

* **refused**: the decision was ``deny`` or ``invalid`` (403, 404 of a concealed record, 4xx);
* **empty**: nothing came back although the request was allowed (a 404 for a record that does
  not exist, a search page without a released record);
* **rate** = (refused + empty) / requests; a caller is listed when it made at least
  ``min_requests`` requests and its rate is at least ``threshold``;
* **distinct_search_values**: per filter name, how many different values (keyed hashes,
  ``search`` in the entries) the caller searched for: many values for one filter is probing
  even when some searches find something.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gateway.audit.entry import AuditKind
from gateway.audit.repository import AuditRepository, EntryFilter

__all__ = ["find_alerts"]


@dataclass
class _Caller:
    agency: str | None
    requests: int = 0
    refused: int = 0
    empty: int = 0
    values: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    first: str = ""
    last: str = ""

    @property
    def rate(self) -> float:
        return (self.refused + self.empty) / self.requests if self.requests else 0.0


def _is_empty(document: dict[str, Any]) -> bool:
    if document.get("decision") != "allow":
        return False
    if document.get("status") == 404:
        return True
    released = (document.get("fields") or {}).get("released")
    return "search" in document and document.get("status") == 200 and not released


def find_alerts(
    engine: Engine,
    *,
    since: datetime,
    until: datetime | None,
    threshold: float,
    min_requests: int,
) -> list[dict[str, Any]]:
    callers: dict[str, _Caller] = {}
    window = EntryFilter(since=since, until=until, kind=str(AuditKind.EXCHANGE))
    with Session(engine) as session:
        for row in AuditRepository(session).iter_entries(window):
            if row.client_id is None:
                continue
            document = orjson.loads(row.leaf)
            caller = callers.setdefault(row.client_id, _Caller(row.requester_agency))
            caller.requests += 1
            if document.get("decision") in ("deny", "invalid"):
                caller.refused += 1
            elif _is_empty(document):
                caller.empty += 1
            for name, digest in ((document.get("search") or {}).get("filters") or {}).items():
                caller.values[name].add(digest)
            caller.first = caller.first or document["time"]
            caller.last = document["time"]
    alerts = [
        {
            "client_id": client_id,
            "agency": caller.agency,
            "requests": caller.requests,
            "refused": caller.refused,
            "empty": caller.empty,
            "rate": round(caller.rate, 4),
            "distinct_search_values": {k: len(v) for k, v in sorted(caller.values.items())},
            "first": caller.first,
            "last": caller.last,
        }
        for client_id, caller in callers.items()
        if caller.requests >= min_requests and caller.rate >= threshold
    ]
    return sorted(alerts, key=lambda a: (-a["rate"], -a["requests"], a["client_id"]))
