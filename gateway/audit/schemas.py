"""The audit API's response bodies, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlertsBody",
    "AuditEntryBody",
    "ConsistencyProof",
    "EntriesPage",
    "InclusionProof",
    "StatsBody",
]


class _Requester(BaseModel):
    agency: str | None
    client_id: str | None
    operator_id: str | None


class _Fields(BaseModel):
    released: list[str]
    withheld: list[str]
    masked: list[str]


class _Upstream(BaseModel):
    status: int | None
    latency_us: int | None


class AuditEntryBody(BaseModel):
    """An audit entry: its leaf bytes (base64) and the JSON document they encode."""

    index: int
    leaf: str = Field(description="the exact leaf bytes, base64")
    time: str
    kind: str
    request_id: str | None
    requester: _Requester
    owner_agency: str | None
    resource: str | None
    record_ids: list[str]
    purpose: str | None
    case_number: str | None
    decision: str
    status: int | None
    fields: _Fields
    rule_ids: list[str]
    policy_version: str | None
    upstream: _Upstream
    body_sha256: str | None
    detail: str | None
    action: dict[str, Any] | None = None
    case_numbers: dict[str, str] | None = Field(
        default=None, description="police and court case number of the bound case"
    )
    search: dict[str, Any] | None = Field(
        default=None,
        description="a search's filter names with keyed hashes of their values, limit, cursor",
    )
    aggregate: dict[str, Any] | None = Field(
        default=None, description="an entry standing for many requests of one source"
    )


class EntriesPage(BaseModel):
    entries: list[AuditEntryBody]
    next_cursor: str | None


class InclusionProof(BaseModel):
    index: int
    tree_size: int
    hashes: list[str] = Field(description="RFC 9162 audit path, base64")


class ConsistencyProof(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    first: int = Field(alias="from")
    second: int = Field(alias="to")
    hashes: list[str] = Field(description="RFC 9162 consistency proof, base64")


class StatsBody(BaseModel):
    group_by: list[str]
    interval: str | None
    rows: list[dict[str, Any]]


class Alert(BaseModel):
    client_id: str
    agency: str | None
    requests: int
    refused: int
    empty: int
    rate: float = Field(description="(refused + empty) / requests")
    distinct_search_values: dict[str, int] = Field(
        description="per filter name, how many different values the caller searched for"
    )
    first: str
    last: str


class AlertsBody(BaseModel):
    since: str
    until: str | None
    threshold: float
    min_requests: int
    alerts: list[Alert]
