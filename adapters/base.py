"""The one interface every agency adapter implements, and its error hierarchy.

An adapter speaks its agency's native protocol on one side and the unified
standard on the other. It knows nothing of policy or audit: the exchange service
calls it only after the policy decision point allowed the request, and records
the outcome whatever it is.

Errors (each names the agency)::

    AdapterError
    ├── UpstreamUnavailable      cannot connect, or the circuit breaker is open   → 502
    ├── UpstreamTimeout          no complete answer within the deadline          → 504
    ├── UpstreamProtocolError    an answer we cannot use: bad status, not JSON/XML,
    │                            too large, wrong envelope                        → 502
    └── MappingError             a native record the mapping cannot translate    → 502
    UnsupportedOperation         the adapter does not offer this resource or operation

A record that is simply not there is not an error: ``fetch`` returns ``None``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Adapter",
    "AdapterError",
    "AdapterHealth",
    "Delivered",
    "MappingError",
    "OutboundDelivery",
    "Page",
    "StandardRecord",
    "UnsupportedOperation",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

StandardRecord = dict[str, Any]


class AdapterError(Exception):
    """An agency system could not give a usable answer.

    ``message`` is for the operator's log only: it may quote the agency's own error text,
    which never reaches a caller or the audit log. ``category`` is the fixed word that does.
    """

    default_category = "upstream_error"

    def __init__(
        self,
        agency: str,
        message: str,
        *,
        upstream_status: int | None = None,
        category: str | None = None,
    ) -> None:
        super().__init__(message)
        self.agency = agency
        self.message = message
        self.upstream_status = upstream_status
        self._category = category

    @property
    def category(self) -> str:
        """``upstream_timeout``, ``upstream_unavailable``, ``upstream_circuit_open``,
        ``upstream_4xx``, ``upstream_5xx``, ``upstream_refused`` (an error answer in the
        agency's envelope) or ``upstream_invalid``.
        """
        if self._category is not None:
            return self._category
        status = self.upstream_status
        if status is not None and 400 <= status < 500:
            return "upstream_4xx"
        if status is not None and status >= 500:
            return "upstream_5xx"
        return self.default_category


class UpstreamUnavailable(AdapterError):
    default_category = "upstream_unavailable"


class UpstreamTimeout(AdapterError):
    default_category = "upstream_timeout"


class UpstreamProtocolError(AdapterError):
    default_category = "upstream_invalid"


class MappingError(AdapterError):
    default_category = "upstream_invalid"

    def __init__(self, agency: str, message: str, *, field_name: str | None = None) -> None:
        super().__init__(agency, message)
        self.field_name = field_name


class UnsupportedOperation(Exception):
    pass


@dataclass(frozen=True)
class Page:
    """One page of a keyset-paginated search; ``next_after`` is the last native id, if more."""

    records: Sequence[StandardRecord]
    next_after: str | None
    upstream_status: int = 200


@dataclass(frozen=True)
class OutboundDelivery:
    """A delivery (协同办案) as the gateway pushes it: the standard side of the write mapping.

    ``record`` is the standard record of ``resource``; each attachment is
    ``{"name", "media_type", "content_base64"}``. ``id`` is also the idempotency key.
    """

    id: str
    kind: str
    from_agency: str
    to_agency: str
    case_number: str
    resource: str
    record: Mapping[str, Any]
    attachments: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class Delivered:
    """The agency system took the delivery: its HTTP status and its own receipt number."""

    status: int
    receipt_id: str | None


@dataclass(frozen=True)
class AdapterHealth:
    ok: bool
    latency_ms: float | None = None
    detail: str | None = None
    circuit: str = "closed"
    extra: Mapping[str, Any] = field(default_factory=dict)


class Adapter(ABC):
    """An agency system seen through the standard.

    ``agency`` is the agency kind it serves (``public_security`` …) and ``resources``
    the standard resource types it owns.
    """

    agency: str
    resources: frozenset[str]

    @abstractmethod
    async def fetch(self, resource: str, record_id: str) -> StandardRecord | None:
        """Return one record in standard form, or None if the agency has no such record."""

    @abstractmethod
    async def search(
        self, resource: str, filters: Mapping[str, str], *, limit: int, after: str | None
    ) -> Page:
        """Records matching all filters, in id order, ``limit`` at most, after ``after``."""

    def search_filters(self, resource: str) -> frozenset[str]:
        """Standard fields the agency's search over ``resource`` can filter on."""
        return frozenset()

    @abstractmethod
    async def health(self) -> AdapterHealth:
        """Whether the agency system answers now."""

    async def deliver(self, delivery: OutboundDelivery) -> Delivered:
        """Push a delivery to the agency's inbound endpoint, in its native format.

        Raises the adapter errors above (an answer of 4xx is an ``UpstreamProtocolError``
        with that ``upstream_status``); adapters of agencies that receive nothing keep this.
        """
        raise UnsupportedOperation(f"{self.agency} accepts no deliveries")

    async def aclose(self) -> None:  # noqa: B027 (optional hook; most adapters hold a client)
        """Release connections. Called once at shutdown."""
