"""Inbound deliveries (协同办案) of the sample systems: what the gateway pushes, kept in memory.

Each system that receives deliveries declares an :class:`InboundSpec`; :func:`inbound_routes`
gives it two routes at ``spec.path`` (authenticated as its reads are, fault switches applied):

* ``POST`` — one delivery in the system's native format, with its idempotency key in the
  ``Idempotency-Key`` header. The document must parse and name the same delivery id as the
  key (else 400 in the native error format). The first push is kept and answered with a new
  receipt number; a repeated key is answered with the same receipt and nothing is kept again.
  ``spec.on_received`` lets the system's data reflect what it received, and ``spec.world``
  moves the case on in the shared dataset when ``app.state.world`` is set (serve-all;
  sandbox/world.py, NATIVE.md).
* ``GET`` — what was received, oldest first, as JSON (an inspection route for tests and the
  demo, not part of the native interface):
  ``{"posts": <POSTs that passed auth>, "received": [{"idempotency_key", "receipt_id",
  "content_type", "document"}]}``; ``document`` is the native document as data (XML as nested
  objects, a repeated element as a list).

Sticky faults: ``PUT /_sandbox/fault`` (only with faults enabled) with a fault string as
body (``status=503``, ``slow=200``, ``hang=5`` …; empty clears it) applies it to every later
data request, the pushes included, as if each carried it in ``X-Sandbox-Fault``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import orjson
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sandbox.world import advance

__all__ = [
    "FAULT_PATH",
    "Header",
    "InboundSpec",
    "Inbox",
    "fault_route",
    "inbound_routes",
    "parse_native",
]

FAULT_PATH = "/_sandbox/fault"
KEY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class InboundSpec:
    """Where and how one system receives deliveries."""

    path: str
    xml: bool
    id_path: tuple[str, ...]  # where the document names the delivery id
    answer: Callable[[str], bytes]  # receipt id → the native success body
    receipt_prefix: str
    status: int = 200
    on_received: Callable[[Request, Any], None] | None = None
    world: Header | None = None  # where the document names what moves the case on


@dataclass(frozen=True, slots=True)
class Header:
    """Where a system's native delivery names its kind, recipient and case number, and its
    document-type codes → the delivery kinds (the world advances by them, sandbox/world.py)."""

    kind: tuple[str, ...]
    to_agency: tuple[str, ...]
    case_number: tuple[str, ...]
    kinds: Mapping[str, str]
    # Codes of copies (抄送): read like the rest, but a copy informs, it is not the step, so it
    # moves nothing (the main delivery, to the agency that takes the case, does).
    copies: frozenset[str] = frozenset()


@dataclass(slots=True)
class Received:
    idempotency_key: str
    receipt_id: str
    content_type: str
    document: Any


@dataclass(slots=True)
class Inbox:
    """What one system received, by idempotency key, in order."""

    posts: int = 0
    received: dict[str, Received] = field(default_factory=dict)


def _element(element: Element) -> Any:
    # The sample systems read XML on their own (not with the gateway's codec): they are the
    # independent side the gateway's write mapping is tested against.
    children = list(element)
    if not children:
        return (element.text or "").strip()
    data: dict[str, Any] = {}
    for child in children:
        value = _element(child)
        if child.tag in data:
            existing = data[child.tag]
            data[child.tag] = (
                [*existing, value] if isinstance(existing, list) else [existing, value]
            )
        else:
            data[child.tag] = value
    return data


def parse_native(body: bytes, xml: bool) -> Any:
    """The document as data, or None when it does not parse."""
    if not xml:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    try:
        root = fromstring(body)
    except (ParseError, DefusedXmlException):
        return None
    return {root.tag: _element(root)}


def _at(document: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(document, Mapping):
            return None
        document = document.get(step)
    return document


def _advance(request: Request, header: Header, document: Any) -> None:
    # Only where the systems share one world (serve-all sets app.state.world to its dataset):
    # a system served alone, or a test's app, keeps its snapshot.
    world = getattr(request.app.state, "world", None)
    if world is None:
        return
    code = str(_at(document, header.kind))
    if code in header.copies:
        return
    kind = header.kinds.get(code)
    to_agency, case_number = _at(document, header.to_agency), _at(document, header.case_number)
    if kind is not None and isinstance(to_agency, str) and isinstance(case_number, str):
        advance(world, kind, to_agency, case_number)


Gate = Callable[[Request], Awaitable[Response | None]]


def inbound_routes(
    spec: InboundSpec, gate: Gate, error: Callable[[int, str], Response], media_type: str
) -> list[BaseRoute]:
    inbox = Inbox()

    async def receive(request: Request) -> Response:
        # The body first: a push whose sender dies during a slow= or hang fault is still kept,
        # as a real system keeps what it read (the sender then knows nothing of the outcome).
        try:
            raw = await request.body()
        except ClientDisconnect:
            return Response(status_code=499)
        early = await gate(request)
        if early is not None:
            return early
        inbox.posts += 1
        key = request.headers.get(KEY_HEADER, "")
        if not key:
            return error(400, f"missing {KEY_HEADER}")
        earlier = inbox.received.get(key)
        if earlier is None:
            document = parse_native(raw, spec.xml)
            if document is None or _at(document, spec.id_path) != key:
                return error(400, "the document does not parse or names another delivery")
            receipt = f"{spec.receipt_prefix}{len(inbox.received) + 1:08d}"
            content_type = request.headers.get("content-type", "")
            earlier = Received(key, receipt, content_type, document)
            inbox.received[key] = earlier
            if spec.on_received is not None:
                spec.on_received(request, document)
            if spec.world is not None:
                _advance(request, spec.world, document)
        body = spec.answer(earlier.receipt_id)
        return Response(body, spec.status, media_type=media_type)

    async def listing(request: Request) -> Response:
        early = await gate(request)
        if early is not None:
            return early
        body = {
            "posts": inbox.posts,
            "received": [
                {
                    "idempotency_key": r.idempotency_key,
                    "receipt_id": r.receipt_id,
                    "content_type": r.content_type,
                    "document": r.document,
                }
                for r in inbox.received.values()
            ],
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return [
        Route(spec.path, receive, methods=["POST"]),
        Route(spec.path, listing, methods=["GET"]),
    ]


def fault_route() -> Route:
    async def set_fault(request: Request) -> Response:
        text = (await request.body()).decode("utf-8", "replace").strip()
        request.app.state.sticky_fault = text or None
        return Response(status_code=204)

    return Route(FAULT_PATH, set_fault, methods=["PUT"])
