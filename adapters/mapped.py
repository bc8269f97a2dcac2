"""The adapter behind every agency file: HTTP transport + codec + declarative mapping."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx2
import orjson

from adapters.base import (
    Adapter,
    AdapterHealth,
    Delivered,
    MappingError,
    OutboundDelivery,
    Page,
    StandardRecord,
    UnsupportedOperation,
    UpstreamProtocolError,
)
from adapters.config import AgencyConfig, AgencyConfigError
from adapters.delivery_writer import DeliveryWriter
from adapters.mapping import CompiledResourceMap, get_path
from adapters.transports.codecs import DecodeError, decode_body
from adapters.transports.http import Outgoing, UpstreamHttp, UpstreamResponse

__all__ = ["MappedAdapter"]

_MISSING_MARKER = get_path({}, "x")
# Record ids travel in URL paths: a closed alphabet leaves nothing to traverse or inject
# (checked with fullmatch: "$" alone would let a trailing newline through).
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class MappedAdapter(Adapter):
    def __init__(
        self,
        config: AgencyConfig,
        secrets: Mapping[str, str],
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        identity: str | None = None,
    ) -> None:
        if identity is not None and config.connection.health_identity_path is None:
            raise AgencyConfigError(
                f"{config.source_file or config.agency}: an identity is expected for "
                f"{config.agency}, but the file names no connection.health_identity_path"
            )
        self.config = config
        self.identity = identity
        self.agency = config.agency
        self.resources = frozenset(config.resources)
        self.maps = {
            name: CompiledResourceMap(config.agency, name, resource)
            for name, resource in config.resources.items()
        }
        self.http = UpstreamHttp(
            config.agency, config.connection, config.auth, secrets, transport=transport
        )
        self.writer = (
            DeliveryWriter(config.agency, config.format, config.deliveries, self.maps)
            if config.deliveries is not None
            else None
        )

    def _map(self, resource: str) -> CompiledResourceMap:
        try:
            return self.maps[resource]
        except KeyError:
            raise UnsupportedOperation(f"{self.agency} does not serve {resource}") from None

    def _decode(self, response: UpstreamResponse) -> Any:
        try:
            body = decode_body(response.body, self.config.format)
        except DecodeError as exc:
            raise UpstreamProtocolError(
                self.agency, str(exc), upstream_status=response.status
            ) from exc
        envelope = self.config.envelope
        if envelope is not None:
            status = get_path(body, envelope.status_path)
            if status is _MISSING_MARKER:
                raise UpstreamProtocolError(
                    self.agency,
                    f"answer has no envelope status {envelope.status_path!r}",
                    upstream_status=response.status,
                )
            if status in envelope.not_found_values:
                return None
            if status not in envelope.ok_values:
                message = get_path(body, envelope.message_path) if envelope.message_path else None
                detail = message if isinstance(message, str) else "error"
                raise UpstreamProtocolError(
                    self.agency,
                    f"agency system answered status {status!r}: {detail}",
                    upstream_status=response.status,
                    category="upstream_refused",
                )
        return body

    def _check_status(self, response: UpstreamResponse) -> None:
        if response.status != 200:
            raise UpstreamProtocolError(
                self.agency,
                f"agency system answered HTTP {response.status}",
                upstream_status=response.status,
            )

    def search_filters(self, resource: str) -> frozenset[str]:
        mapping = self.maps.get(resource)
        if mapping is None or mapping.config.search is None:
            return frozenset()
        return frozenset(mapping.config.search.params)

    async def fetch(self, resource: str, record_id: str) -> StandardRecord | None:
        mapping = self._map(resource)
        if not isinstance(record_id, str) or not SAFE_ID.fullmatch(record_id):
            return None
        path = mapping.config.fetch.path.replace("{id}", quote(record_id, safe=""))
        response = await self.http.get(path)
        if response.status == 404:
            return None
        self._check_status(response)
        body = self._decode(response)
        if body is None:
            return None
        native = get_path(body, mapping.config.fetch.record_path)
        if native is _MISSING_MARKER or native in (None, "", {}):
            return None
        record = mapping.to_standard(native)
        if record.get(mapping.config.id_field) != record_id:
            raise MappingError(
                self.agency,
                f"{resource}: asked for {record_id!r}, the agency returned another record",
                field_name=mapping.config.id_field,
            )
        return record

    async def search(
        self, resource: str, filters: Mapping[str, str], *, limit: int, after: str | None
    ) -> Page:
        mapping = self._map(resource)
        search = mapping.config.search
        if search is None:
            raise UnsupportedOperation(f"{self.agency} offers no search over {resource}")
        params: dict[str, str] = dict(search.extra_params)
        for name, value in filters.items():
            native_param = search.params.get(name)
            if native_param is None:
                raise UnsupportedOperation(f"{self.agency} cannot filter {resource} by {name}")
            params[native_param] = mapping.native_filter(name, value)
        # One more than asked tells whether another page exists. When the agency's maximum
        # page is not larger than ``limit``, a full page may be followed by more: the page is
        # then cut at the maximum and a full one always carries a cursor (at worst the next
        # page is empty), instead of records being dropped silently.
        if limit < 1:
            raise ValueError("limit must be at least 1")
        asked = min(limit + 1, search.max_limit)
        page_size = min(limit, asked)
        params[search.limit_param] = str(asked)
        if after is not None:
            params[search.after_param] = after
        response = await self.http.get(search.path, params)
        self._check_status(response)
        body = self._decode(response)
        natives = get_path(body, search.records_path) if body is not None else []
        if natives is _MISSING_MARKER or natives in (None, ""):
            natives = []
        if isinstance(natives, Mapping):
            natives = [natives]  # XML: a single repeated element reads as one object
        if not isinstance(natives, list):
            raise UpstreamProtocolError(self.agency, f"{resource}: search records are not a list")
        records = [mapping.to_standard(native) for native in natives]
        id_field = mapping.config.id_field
        for record in records:
            if not isinstance(record.get(id_field), str):
                raise MappingError(
                    self.agency, f"{resource}: a record has no {id_field}", field_name=id_field
                )
        has_more = len(records) > page_size if asked > limit else len(records) >= asked
        records = records[:page_size]
        next_after = str(records[-1][id_field]) if has_more and records else None
        return Page(records=records, next_after=next_after, upstream_status=response.status)

    async def deliver(self, delivery: OutboundDelivery) -> Delivered:
        """POST the native document; 2xx with an OK envelope is delivered, anything else raises.

        The delivery id goes in the file's ``idempotency_header``: the agency system answers a
        repeated push with its first receipt and stores nothing twice.
        """
        writer = self.writer
        if writer is None:
            raise UnsupportedOperation(f"{self.agency} accepts no deliveries")
        config = writer.config
        media = "application/xml" if self.config.format == "xml" else "application/json"
        out = Outgoing(
            config.method,
            writer.body(delivery),
            {config.idempotency_header: delivery.id, "Content-Type": f"{media}; charset=utf-8"},
        )
        response = await self.http.send(config.path, out)
        if not 200 <= response.status < 300:
            raise UpstreamProtocolError(
                self.agency,
                f"agency system answered HTTP {response.status} to a delivery",
                upstream_status=response.status,
            )
        body = self._decode(response)
        receipt = get_path(body, config.receipt_path) if body is not None else None
        receipt_id = receipt if isinstance(receipt, str) and receipt else None
        if receipt_id is None:
            raise UpstreamProtocolError(
                self.agency,
                f"the answer to a delivery names no receipt at {config.receipt_path!r}",
                upstream_status=response.status,
            )
        return Delivered(response.status, receipt_id)

    async def health(self) -> AdapterHealth:
        started = time.perf_counter()
        state = self.http.circuit_state
        try:
            response = await self.http.get(self.config.connection.health_path)
        except Exception as exc:  # health reports any failure as "not ok"
            return AdapterHealth(ok=False, detail=str(exc), circuit=str(state))
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        circuit = str(self.http.circuit_state)
        if response.status != 200:
            return AdapterHealth(
                ok=False, latency_ms=latency_ms, detail=f"HTTP {response.status}", circuit=circuit
            )
        if self.identity is None:
            return AdapterHealth(ok=True, latency_ms=latency_ms, circuit=circuit)
        answered = self._health_identity(response.body)
        if answered != self.identity:
            return AdapterHealth(
                ok=False,
                latency_ms=latency_ms,
                detail=f"the system at {self.config.connection.base_url} is not the expected "
                f"one: its health answer names identity {answered!r}",
                circuit=circuit,
                extra={"identity": "mismatch"},
            )
        return AdapterHealth(
            ok=True, latency_ms=latency_ms, circuit=circuit, extra={"identity": "ok"}
        )

    def _health_identity(self, body: bytes) -> str | None:
        path = self.config.connection.health_identity_path
        assert path is not None
        try:
            value = get_path(orjson.loads(body), path)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, str) else None

    async def aclose(self) -> None:
        await self.http.aclose()
