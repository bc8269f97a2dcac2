"""What regulators (and, for their own receipts, agency systems) may ask of the audit log.

Every method is a read; nothing here can change the log. Methods are synchronous
and run in the threadpool.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gateway.audit.entry import CONCEALED
from gateway.audit.merkle import consistency_proof, inclusion_proof
from gateway.audit.models import AuditEntry
from gateway.audit.repository import AuditRepository, EntryFilter, NodeTable
from gateway.errors import BadRequest, NotFound

__all__ = ["STATS_GROUPS", "AuditService", "EntryView"]

STATS_GROUPS = {
    "requester": "requester_agency",
    "owner": "owner_agency",
    "resource": "resource",
    "decision": "decision",
    "purpose": "purpose",
    "kind": "kind",
}
EXPORT_COLUMNS = [
    "index",
    "time",
    "kind",
    "request_id",
    "requester_agency",
    "client_id",
    "operator_id",
    "owner_agency",
    "resource",
    "record_ids",
    "purpose",
    "case_number",
    "decision",
    "status",
    "released",
    "withheld",
    "masked",
    "rule_ids",
    "policy_version",
    "upstream_status",
    "upstream_latency_us",
    "body_sha256",
    "leaf",
]


@dataclass(frozen=True)
class EntryView:
    index: int
    leaf: bytes
    document: dict[str, Any]
    client_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "leaf": base64.b64encode(self.leaf).decode("ascii"),
            **{k: v for k, v in self.document.items() if k != "index"},
        }


def _view(row: AuditEntry) -> EntryView:
    leaf = bytes(row.leaf)
    return EntryView(row.idx, leaf, orjson.loads(leaf), row.client_id)


def _percentile(sorted_values: Sequence[int], fraction: float) -> int | None:
    if not sorted_values:
        return None
    position = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[position]


class AuditService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def latest_checkpoint_note(self) -> str:
        with Session(self.engine) as conn:
            checkpoint = AuditRepository(conn).latest_checkpoint()
        if checkpoint is None:
            raise NotFound(
                "no checkpoint has been signed yet; entries are checkpointed within seconds"
            )
        return checkpoint.note

    def _checkpointed_size(self, repository: AuditRepository) -> int:
        checkpoint = repository.latest_checkpoint()
        return 0 if checkpoint is None else int(checkpoint.tree_size)

    def entry(self, index: int) -> EntryView:
        with Session(self.engine) as conn:
            row = AuditRepository(conn).entry(index)
        if row is None:
            raise NotFound(f"there is no audit entry {index}")
        return _view(row)

    def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        with Session(self.engine) as conn:
            repository = AuditRepository(conn)
            signed = self._checkpointed_size(repository)
            if tree_size > signed:
                raise BadRequest(
                    f"tree_size {tree_size} is beyond the latest checkpoint ({signed})"
                )
            if index >= tree_size:
                raise BadRequest(f"index {index} is not inside a tree of size {tree_size}")
            return inclusion_proof(index, tree_size, NodeTable(conn))

    def consistency(self, first: int, second: int) -> list[bytes]:
        with Session(self.engine) as conn:
            repository = AuditRepository(conn)
            signed = self._checkpointed_size(repository)
            if first > second:
                raise BadRequest(f"from ({first}) is larger than to ({second})")
            if second > signed:
                raise BadRequest(f"to ({second}) is beyond the latest checkpoint ({signed})")
            return consistency_proof(first, second, NodeTable(conn))

    def entries(
        self, filters: EntryFilter, *, after: int | None, limit: int
    ) -> tuple[list[EntryView], int | None]:
        with Session(self.engine) as conn:
            rows = AuditRepository(conn).entries(filters, after=after, limit=limit + 1)
        views = [_view(row) for row in rows[:limit]]
        next_after = views[-1].index if len(rows) > limit and views else None
        return views, next_after

    def export_lines(self, filters: EntryFilter, fmt: str) -> Iterator[bytes]:
        """Stream a filtered range; each batch reads on its own short connection."""
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(EXPORT_COLUMNS)
            yield buffer.getvalue().encode()
        after: int | None = None
        while True:
            views, after = self.entries(filters, after=after, limit=1000)
            for view in views:
                if fmt == "jsonl":
                    yield orjson.dumps(view.as_json()) + b"\n"
                else:
                    yield _csv_row(view)
            if after is None:
                return

    def stats(
        self, filters: EntryFilter, group_by: Sequence[str], interval: str | None
    ) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        latencies: dict[tuple[Any, ...], list[int]] = {}
        with Session(self.engine) as conn:
            for row in AuditRepository(conn).iter_entries(filters):
                key_parts: list[Any] = []
                if interval is not None:
                    key_parts.append(_bucket(row.created_at, interval))
                key_parts.extend(getattr(row, STATS_GROUPS[g]) for g in group_by)
                key = tuple(key_parts)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = {"count": 0, "denied": 0, "concealed": 0, "errors": 0}
                    latencies[key] = []
                group["count"] += 1
                if row.decision == "deny":
                    group["denied"] += 1
                    if _concealed(row.leaf):
                        group["concealed"] += 1
                elif row.decision in ("error", "invalid"):
                    group["errors"] += 1
                if row.upstream_latency_us is not None:
                    latencies[key].append(row.upstream_latency_us)
        result = []
        for key, group in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
            values = sorted(latencies[key])
            names = (["period"] if interval else []) + list(group_by)
            result.append(
                {
                    **dict(zip(names, key, strict=True)),
                    **group,
                    "upstream_latency_us": {
                        "p50": _percentile(values, 0.50),
                        "p95": _percentile(values, 0.95),
                        "p99": _percentile(values, 0.99),
                    },
                }
            )
        return result


def _concealed(leaf: bytes) -> bool:
    """A denial answered as if nothing existed (the exchange's detail says so)."""
    detail = orjson.loads(leaf).get("detail")
    return isinstance(detail, str) and detail.startswith(CONCEALED)


def _bucket(moment: datetime, interval: str) -> str:
    moment = moment.astimezone(UTC)
    if interval == "hour":
        return moment.strftime("%Y-%m-%dT%H:00Z")
    if interval == "day":
        return moment.strftime("%Y-%m-%d")
    if interval == "month":
        return moment.strftime("%Y-%m")
    raise BadRequest(f"unknown interval {interval!r}: hour, day or month")


# OWASP "CSV Injection": a cell a spreadsheet would read as a formula or a command.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ``'`` before ``= + - @`` tab or CR.

    The audit values are names, codes, ids and numbers that never start so; a caller-chosen
    value that does (a request path, an id) is shown with the quote in front. The JSON Lines
    export and the leaf bytes (the ``leaf`` column) keep the exact value.
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_row(view: EntryView) -> bytes:
    doc = view.document
    fields = doc.get("fields", {})
    requester = doc.get("requester", {})
    upstream = doc.get("upstream", {})
    values = [
        view.index,
        doc.get("time"),
        doc.get("kind"),
        doc.get("request_id"),
        requester.get("agency"),
        requester.get("client_id"),
        requester.get("operator_id"),
        doc.get("owner_agency"),
        doc.get("resource"),
        " ".join(doc.get("record_ids", [])),
        doc.get("purpose"),
        doc.get("case_number"),
        doc.get("decision"),
        doc.get("status"),
        " ".join(fields.get("released", [])),
        " ".join(fields.get("withheld", [])),
        " ".join(fields.get("masked", [])),
        " ".join(doc.get("rule_ids", [])),
        doc.get("policy_version"),
        upstream.get("status"),
        upstream.get("latency_us"),
        doc.get("body_sha256"),
        base64.b64encode(view.leaf).decode("ascii"),
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerow([neutralise_cell(v) for v in values])
    return buffer.getvalue().encode()
