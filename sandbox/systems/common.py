"""Machinery shared by the five sample agency systems: routes, pagination, faults, helpers.

A system is described by a :class:`SystemSpec` (its resources, native query names, renderer)
and turned into a Starlette app by :func:`build_app`. Routes of every system:

* ``GET /health`` (no auth) → ``{"status": "UP", "agency": kind, "seed": …, "cases": …}``, plus
  ``"instance"`` when the app's ``state.instance`` is set (``serve-all`` sets it);
* ``GET <path>/{id}`` → one native record, 404 if unknown;
* ``GET <path>?<native filter>=…&after=<last id>&<limit param>=N`` → one page, in id order.

Fault switches (only with ``faults_enabled=True``), by header ``X-Sandbox-Fault`` or query
parameter ``_fault``, comma-separated, on the data routes (after auth):
``slow=<ms>``, ``status=<code>``, ``garbage``, ``huge[=<MiB>]`` (default 16 MiB, streamed, no
Content-Length), ``invalid`` (first record breaks the standard), ``hang[=<s>]`` (default 300 s).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from sandbox.generator import Dataset, Record
from sandbox.index import DatasetIndex
from sandbox.systems.auth import Authenticator
from sandbox.systems.inbound import InboundSpec, fault_route, inbound_routes
from sandbox.systems.search import UnsupportedFilterError, search

NativeRecord = dict[str, object]
Corrupter = Callable[[NativeRecord], None]
DEFAULT_INDEX_LIMIT = 50_000
FAULT_HEADER = "X-Sandbox-Fault"
FAULT_PARAM = "_fault"
GARBAGE = b'\x00\x8b\x1f<html><body><h1>502 Bad Gateway</h1></body></html>{"code":'


@dataclass(frozen=True, slots=True)
class NativeResource:
    """One resource as a native system exposes it."""

    resource: str  # standard resource name
    path: str  # route prefix, e.g. "/api/ajxx"
    params: Mapping[str, str]  # native query parameter → standard filter field
    to_native: Callable[[Record], NativeRecord]
    corrupt: Corrupter  # make the record break the standard (unknown code, bad ID…)


@dataclass(frozen=True, slots=True)
class Renderer:
    """Native wire format of a system."""

    media_type: str
    one: Callable[[str, NativeRecord], bytes]  # (standard resource name, record)
    page: Callable[[str, Sequence[NativeRecord], str | None], bytes]
    error: Callable[[int, str], bytes]


@dataclass(frozen=True, slots=True)
class SystemSpec:
    """Everything that makes one sample system different from the others."""

    kind: str
    resources: tuple[NativeResource, ...]
    renderer: Renderer
    limit_param: str
    default_limit: int
    max_limit: int
    after_param: str = "after"
    error_headers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    inbound: InboundSpec | None = None  # where it receives deliveries (sandbox/NATIVE.md)


@dataclass(slots=True)
class Faults:
    """Parsed fault switches of one request."""

    slow_ms: int = 0
    status: int | None = None
    garbage: bool = False
    huge_mib: int = 0
    invalid: bool = False
    hang_s: float = 0.0


def parse_faults(request: Request) -> Faults:
    """Read ``X-Sandbox-Fault`` / ``_fault`` (unknown or malformed switches are ignored)."""
    raw = request.headers.getlist(FAULT_HEADER) + request.query_params.getlist(FAULT_PARAM)
    sticky = getattr(request.app.state, "sticky_fault", None)  # PUT /_sandbox/fault
    if sticky:
        raw.append(sticky)
    faults = Faults()
    for token in ",".join(raw).split(","):
        name, _, value = token.strip().partition("=")
        try:
            if name == "slow":
                faults.slow_ms = int(value or "1000")
            elif name == "status":
                faults.status = int(value or "500")
            elif name == "garbage":
                faults.garbage = True
            elif name == "huge":
                faults.huge_mib = int(value or "16")
            elif name == "invalid":
                faults.invalid = True
            elif name == "hang":
                faults.hang_s = float(value or "300")
        except ValueError:
            continue
    return faults


def _huge(renderer: Renderer, resource: str, sample: NativeRecord, mib: int) -> Response:
    per_record = len(renderer.page(resource, [sample] * 2, None)) - len(
        renderer.page(resource, [sample], None)
    )
    body = renderer.page(resource, [sample] * (mib * 1024 * 1024 // max(per_record, 1) + 1), None)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    return StreamingResponse(chunks(), media_type=renderer.media_type)


def build_app(
    spec: SystemSpec,
    dataset: Dataset,
    authenticate: Authenticator,
    *,
    faults_enabled: bool = False,
    index_limit: int = DEFAULT_INDEX_LIMIT,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """Build the Starlette app of ``spec`` over ``dataset``.

    Indices are built here (synchronously) when ``dataset.n_cases <= index_limit``; above it,
    fetch-by-id and the case/person filters still work, other filters answer 400.
    """
    index: DatasetIndex | None = dataset.index() if dataset.n_cases <= index_limit else None
    renderer = spec.renderer

    def error(status: int, message: str) -> Response:
        headers = dict(spec.error_headers.get(status, {}))
        body = renderer.error(status, message)
        return Response(body, status, headers=headers, media_type=renderer.media_type)

    async def gate(request: Request) -> tuple[Faults, Response | None]:
        problem = authenticate(request)
        if problem is not None:
            return Faults(), error(401, problem)
        faults = parse_faults(request) if faults_enabled else Faults()
        if faults.hang_s:
            await asyncio.sleep(faults.hang_s)
        if faults.slow_ms:
            await asyncio.sleep(faults.slow_ms / 1000)
        if faults.status is not None:
            return faults, error(faults.status, "sandbox fault")
        if faults.garbage:
            return faults, Response(GARBAGE, media_type=renderer.media_type)
        return faults, None

    def respond(
        res: NativeResource,
        records: list[NativeRecord],
        faults: Faults,
        body: Callable[[list[NativeRecord]], bytes],
    ) -> Response:
        if faults.invalid and records:
            records[0] = copy.deepcopy(records[0])
            res.corrupt(records[0])
        if faults.huge_mib and records:
            return _huge(renderer, res.resource, records[0], faults.huge_mib)
        return Response(body(records), media_type=renderer.media_type)

    def routes_for(res: NativeResource) -> list[Route]:
        async def get_one(request: Request) -> Response:
            faults, early = await gate(request)
            if early is not None:
                return early
            record = dataset.get(res.resource, request.path_params["record_id"])
            if record is None:
                return error(404, "not found")
            return respond(
                res, [res.to_native(record)], faults, lambda rs: renderer.one(res.resource, rs[0])
            )

        async def find(request: Request) -> Response:
            faults, early = await gate(request)
            if early is not None:
                return early
            query = request.query_params
            raw_limit = query.get(spec.limit_param, str(spec.default_limit))
            if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= spec.max_limit:
                return error(400, f"{spec.limit_param} must be 1..{spec.max_limit}")
            filters = {std: query[native] for native, std in res.params.items() if native in query}
            try:
                page = search(
                    dataset,
                    index,
                    res.resource,
                    filters,
                    after=query.get(spec.after_param) or None,
                    limit=int(raw_limit),
                )
            except UnsupportedFilterError as exc:
                return error(400, f"filter {exc} needs an index (dataset too large)")
            natives = [res.to_native(r) for r in page.records]
            return respond(
                res, natives, faults, lambda rs: renderer.page(res.resource, rs, page.next_after)
            )

        return [
            Route(res.path, find, methods=["GET"]),
            Route(res.path + "/{record_id}", get_one, methods=["GET"]),
        ]

    async def health(request: Request) -> Response:
        body: dict[str, object] = {
            "status": "UP",
            "agency": spec.kind,
            "seed": dataset.seed,
            "cases": dataset.n_cases,
        }
        # Who answers: the demo checks that the system on this port is the one it started.
        instance = getattr(request.app.state, "instance", None)
        if instance is not None:
            body["instance"] = instance
        return Response(orjson.dumps(body), media_type="application/json")

    routes: list[BaseRoute] = [Route("/health", health, methods=["GET"]), *extra_routes]
    if spec.inbound is not None:

        async def inbound_gate(request: Request) -> Response | None:
            return (await gate(request))[1]

        routes.extend(inbound_routes(spec.inbound, inbound_gate, error, renderer.media_type))
    if faults_enabled:
        routes.append(fault_route())
    for res in spec.resources:
        routes.extend(routes_for(res))
    app = Starlette(routes=routes)
    app.state.dataset = dataset
    app.state.spec = spec
    return app


# --- typed accessors for converters (records are Mapping[str, object]) ---------------------


def text(record: Record, key: str) -> str:
    """A required string field."""
    value = record[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def opt_text(record: Record, key: str) -> str | None:
    """An optional string field."""
    value = record[key]
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def flag(record: Record, key: str) -> bool:
    """A boolean field."""
    return record[key] is True


def number(record: Record, key: str) -> int | None:
    """An optional integer field."""
    value = record[key]
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise TypeError(f"{key} is not an integer")


def strings(record: Record, key: str) -> list[str]:
    """A list-of-strings field."""
    value = record[key]
    if not isinstance(value, list):
        raise TypeError(f"{key} is not a list")
    return [str(v) for v in value]


def json_bytes(value: object) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as is)."""
    return orjson.dumps(value)


def set_field(key: str, value: object) -> Corrupter:
    """Corrupter that overwrites ``key`` with ``value`` (e.g. an unknown code)."""

    def corrupt(record: NativeRecord) -> None:
        record[key] = value

    return corrupt


def break_id_number(id_number: str) -> str:
    """Same ID number with a wrong GB 11643 check character."""
    from sandbox.people import id_check_char

    good = id_check_char(id_number[:17]) if len(id_number) == 18 else "0"
    return id_number[:17] + ("1" if good != "1" else "2")
