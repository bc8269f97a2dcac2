"""The write mapping of deliveries: a standard delivery as an agency's native inbound document.

Declared in the agency file under ``deliveries`` (:class:`~adapters.config.DeliveriesConfig`):
the delivery's own fields (id, kind, sender, recipient, case number) at their native paths, the
record at ``record_path`` written by the mapping of its resource, and the attachments as a list
at their path. A resource the agency keeps itself is written with its read mapping read
backwards; one it only receives needs its own table under ``deliveries.records``. Rendering
never guesses: a resource without a write mapping, or two fields writing one native path,
raises :class:`~adapters.base.MappingError` (the push is then refused, not sent half-mapped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import MappingError, OutboundDelivery
from adapters.config import DeliveriesConfig
from adapters.mapping import CompiledFieldMap, set_path
from adapters.transports.codecs import encode_body

__all__ = ["DeliveryWriter"]


class DeliveryWriter:
    def __init__(
        self,
        agency: str,
        body_format: str,
        config: DeliveriesConfig,
        read_maps: Mapping[str, CompiledFieldMap],
    ) -> None:
        self.agency = agency
        self.format = body_format
        self.config = config
        self.header = CompiledFieldMap(agency, "delivery", config.fields)
        self.records: dict[str, CompiledFieldMap] = dict(read_maps)
        for resource, fields in config.records.items():
            self.records[resource] = CompiledFieldMap(agency, resource, fields)
        attachments = config.attachments
        self.attachment = (
            CompiledFieldMap(agency, "attachment", attachments.fields) if attachments else None
        )

    def document(self, delivery: OutboundDelivery) -> dict[str, Any]:
        """The native document (for XML, the content of the root element)."""
        mapping = self.records.get(delivery.resource)
        if mapping is None:
            raise MappingError(
                self.agency, f"deliveries: no write mapping for {delivery.resource} records"
            )
        document = self.header.to_native(
            {
                "delivery_id": delivery.id,
                "kind": delivery.kind,
                "from_agency": delivery.from_agency,
                "to_agency": delivery.to_agency,
                "case_number": delivery.case_number,
            }
        )
        self._put(document, self.config.record_path, mapping.to_native(delivery.record))
        if self.attachment is not None and self.config.attachments is not None:
            files = [self.attachment.to_native(a) for a in delivery.attachments]
            self._put(document, self.config.attachments.path, files)
        return document

    def body(self, delivery: OutboundDelivery) -> bytes:
        document = self.document(delivery)
        if self.config.root is not None:
            return encode_body({self.config.root: document}, self.format)
        return encode_body(document, self.format)

    def _put(self, document: dict[str, Any], path: str, value: Any) -> None:
        if not set_path(document, path, value):
            raise MappingError(self.agency, f"deliveries: native {path} is written twice")
