"""Deliveries over HTTP (协同办案): create, read, list, answer, figures; one audited path.

Contract of :meth:`DeliveryService.handle`: every request, refused ones included, gets exactly
one audit entry (kind ``delivery``) BEFORE anything is answered; if the entry cannot be
written nothing is answered but a 503, and nothing is stored. A state change (create, answer)
is written AFTER its entry, carrying the entry's index in its event: a request that fails
there answers 503 and leaves nothing half-done.

Creation, in order (every refusal a 4xx naming its field or header, nothing written):
the body (:func:`gateway.deliveries.request.parse_delivery`), ``Idempotency-Key`` (400),
``X-Case-Number`` (400), ``X-Purpose`` must be the purpose the sender's kind sends the kind
under (403), the recipient kind must have a declared purpose (403, 换押 today), the delivery
rules of the permissions list (:meth:`PolicyEngine.decide_delivery`, 403), a replay of the key
(the same delivery again, 201) or its conflict (409), the sender's agency must handle the case
(403), a per-case limit of the kind (补充侦查以二次为限, 409), then the content decided for the
recipient as a read by it (:func:`gateway.deliveries.recipient.check_for_recipient`: refused
with the field named, never stripped, 403), then the same for each copy (抄送) agency
(:mod:`gateway.deliveries.copies`: its delivery rule before the replay, its content after the
recipient's; 403 naming ``copies[i]``), then the deadline (422 naming the date field). The
copies are stored with the main delivery in one transaction, each its own row (``copy_of``);
the request's one audit entry lists all their ids in ``record_ids``.
``record_id``: the sender's own record, fetched from its agency's system only if the sender's
kind keeps that resource, the sender handles the case and the recipient may read such records
(:meth:`DeliveryService._own_record`); then checked as an inline record.

A delivery the caller's agency neither sent nor receives answers the same 404 as a missing one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway.audit.checkpoint import CheckpointSigner
from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.writer import AuditUnavailable, AuditWriter
from gateway.auth.tokens import Principal
from gateway.db import session_scope
from gateway.deliveries.content import RecipientRead, decide_content
from gateway.deliveries.copies import check_copies, check_copy_rules, copy_rows
from gateway.deliveries.lifecycle import check_answer, not_found, record_answer, render
from gateway.deliveries.limits import check_per_case_limit, enforce_per_case_limit
from gateway.deliveries.moves import as_received, recipient_mismatch
from gateway.deliveries.repository import (
    DeliveryRepository,
    IdempotencyConflict,
    NewDelivery,
    create_idempotent,
    new_delivery_id,
)
from gateway.deliveries.request import DeliveryRequest, parse_delivery
from gateway.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    InvalidHeader,
    ServiceUnavailable,
    UnprocessableContent,
    error_response,
    problem_response,
)
from gateway.exchange.request import ExchangeHeaders, parse_headers
from gateway.exchange.service import ExchangeService
from gateway.observability.context import current_request_id
from gateway.policy.decision import AccessRequest, CaseContext
from gateway.policy.follower import PolicyHolder
from gateway.standard import Standard

__all__ = ["AUDIT_INDEX_HEADER", "Answer", "DeliveryService"]

log = structlog.get_logger(__name__)

AUDIT_INDEX_HEADER = "X-Audit-Index"
_KEY = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass
class Answer:
    """What a request answers once its entry is written.

    ``commit`` stores the step after the entry, in a worker thread: its transaction may wait
    for the database's write lock (up to the busy timeout on SQLite), which on the event loop
    would hold every other request of the worker. So it touches the database only; ``after``
    then runs on the loop with what ``commit`` returned (waking the outbox, dropping a cached
    case: loop-side state).
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    commit: Callable[[int], Any] | None = None
    after: Callable[[Any], None] | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeliveryService:
    def __init__(
        self,
        *,
        standard: Standard,
        policy: PolicyHolder,
        exchange: ExchangeService,
        audit: AuditWriter,
        factory: sessionmaker[Session],
        signer: Callable[[], CheckpointSigner],
        clock: Callable[[], datetime] = _utcnow,
        on_created: Callable[[], None] = lambda: None,
    ) -> None:
        self.on_created = on_created  # wakes the outbox pusher: the push follows at once
        self.standard = standard
        self.policy = policy
        self.exchange = exchange
        self.audit = audit
        self.factory = factory
        self.signer = signer
        self.clock = clock

    # -- the audited path ----------------------------------------------------------------

    async def handle(
        self,
        request: Request,
        caller: Principal | GatewayError,
        event: str,
        work: Callable[[Principal, ExchangeHeaders, EntryDraft], Awaitable[Answer]],
    ) -> Response:
        draft = EntryDraft(
            kind=AuditKind.DELIVERY,
            request_id=current_request_id(),
            resource="delivery",
            action={"event": event},
        )
        draft.policy_version = self.policy.current.version
        answer: Answer | None = None
        error: GatewayError | None = None
        try:
            if isinstance(caller, GatewayError):
                draft.client_id = getattr(request.state, "client_id", None)
                draft.requester_agency = getattr(request.state, "agency", None)
                raise caller
            draft.client_id, draft.requester_agency = caller.client_id, caller.agency
            headers = parse_headers(request.headers, self.standard)
            draft.purpose, draft.operator_id = headers.purpose, headers.operator_id
            draft.case_number = headers.case_number
            answer = await work(caller, headers, draft)
            draft.decision = Decision.ALLOW
        except GatewayError as exc:
            error = exc
            if draft.decision is Decision.ERROR and exc.status < 500:
                draft.decision = Decision.DENY if exc.status in (403, 404) else Decision.INVALID
            draft.detail = f"{exc.slug}: {exc.detail}"[:500]
        draft.status = error.status if error is not None else answer.status  # type: ignore[union-attr]
        try:
            index = await self.audit.append(draft)
        except AuditUnavailable:
            log.error("audit unavailable: refusing to answer", request_id=draft.request_id)
            return error_response(
                ServiceUnavailable(
                    "the audit log cannot record this request, so nothing is answered or stored"
                ),
                request.url.path,
            )
        audit_headers = {AUDIT_INDEX_HEADER: str(index)}
        if error is None and answer is not None and answer.commit is not None:
            try:
                answer.body = await run_in_threadpool(answer.commit, index)
                if answer.after is not None:
                    answer.after(answer.body)
            except GatewayError as exc:
                error = exc
            except SQLAlchemyError:
                log.exception("delivery write failed", request_id=draft.request_id)
                error = ServiceUnavailable("the delivery could not be stored; nothing was stored")
            if error is not None:
                # The entry said what was decided; a second one says it was not done.
                failed = replace(
                    draft,
                    status=error.status,
                    decision=Decision.ERROR,
                    detail=f"not done after entry {index}: {error.slug}: {error.detail}"[:500],
                )
                try:
                    index = await self.audit.append(failed)
                except AuditUnavailable:
                    log.error("audit unavailable after a failed write", request_id=draft.request_id)
                audit_headers = {AUDIT_INDEX_HEADER: str(index)}
        if error is not None:
            return problem_response(
                error.status,
                error.title,
                error.detail,
                slug=error.slug,
                instance=request.url.path,
                headers={**error.headers, **audit_headers},
                extra=error.extra,
            )
        assert answer is not None
        return Response(
            orjson.dumps(answer.body),
            status_code=answer.status,
            media_type="application/json",
            headers={**answer.headers, **audit_headers},
        )

    # -- create --------------------------------------------------------------------------

    async def create(
        self,
        request: Request,
        body: bytes,
        caller: Principal,
        headers: ExchangeHeaders,
        draft: EntryDraft,
    ) -> Answer:
        parsed = parse_delivery(self.standard, caller.agency, body)
        kind, sender, recipient = parsed.kind, parsed.sender, parsed.recipient
        draft.resource, draft.owner_agency = kind.resource, sender.code
        draft.action = {"event": "created", "kind": kind.code, "to_agency": recipient.code}
        key = request.headers.get("idempotency-key")
        if key is None or not _KEY.fullmatch(key):
            raise InvalidHeader(
                "Idempotency-Key", "Idempotency-Key is required: 1-128 printable ASCII characters"
            )
        if headers.case_number is None:
            raise InvalidHeader("X-Case-Number", "X-Case-Number is required: the case delivered")
        sent_under = kind.purpose_for(sender.kind)
        if headers.purpose != sent_under:
            raise Forbidden(f"{kind.name} ({kind.code}) is sent under purpose {sent_under}")
        purpose = kind.recipient_purpose(recipient.kind)
        if purpose is None:
            raise Forbidden(
                f"{kind.name} ({kind.code}) cannot be delivered to agencies of kind "
                f"{recipient.kind}: the standard declares no purpose they receive it under"
            )
        pdp = self.policy.current
        allowed = pdp.decide_delivery(sender.kind, recipient.kind, kind.code)
        draft.rule_ids = list(allowed.rule_ids)
        if not allowed.allowed:
            raise Forbidden(f"denied: {allowed.reason}", extra={"rule_ids": []})
        copy_purposes = check_copy_rules(pdp, parsed, draft)
        replay = self._replay(caller.client_id, key, parsed.request_sha256)
        if replay is not None:
            draft.action = {**draft.action, "event": "replayed", "delivery": replay["id"]}
            draft.record_ids = [replay["id"]]
            return Answer(201, replay, {"Location": f"/v1/deliveries/{replay['id']}"})
        case = await self.exchange.case_context(headers.case_number, draft, recipient.code, purpose)
        sender_handles = case is not None and sender.code in case.handling_agencies
        if case is not None and not sender_handles:
            # The case was completed with the parties the flow adds for the RECIPIENT; a sender
            # the flow makes a party (the prison of a 收监回执) is looked up for itself. The
            # recipient's decision keeps the recipient's view of the case.
            as_sender = await self.exchange.parties.complete(case, sender.code, sent_under)
            sender_handles = sender.code in as_sender.handling_agencies
        if case is None or not sender_handles:
            # Only an agency of the case sends in it. Asked before anything the recipient may
            # see of the case is decided, in the exchange's words for a case the caller does
            # not handle: whether the case exists is nothing an outsider learns here.
            raise Forbidden(
                f"denied: {sender.code} handles no case numbered {headers.case_number!r}",
                extra={"rule_ids": []},
            )
        check_per_case_limit(self.factory, parsed.kind, headers.case_number, case)
        if parsed.record is not None:
            record = parsed.record
        else:
            record = await self._own_record(parsed, headers, case, purpose, draft)
        self._check_addressee(parsed, record)
        # Decided for the recipient as the delivery leaves the case: at the stage the step puts
        # it in, the recipient a party if the record names it (moves.py). Nothing is stored.
        received = as_received(
            self.standard, case, kind, recipient, self.standard.resource(kind.resource), record
        )
        await self.check_content(parsed, record, headers, received, purpose, draft)
        await check_copies(self, parsed, record, headers, copy_purposes, draft)
        now = self.clock()
        due = parsed.deadline(record, now)
        # The delivered document as the standard defines it: without the flags kept for the
        # gateway's decisions alone (decided on above, never delivered; see recipient.py).
        decision_only = self.standard.resource(kind.resource).decision_only_fields
        record = {name: value for name, value in record.items() if name not in decision_only}
        content = parsed.content(record)
        new = NewDelivery(
            id=new_delivery_id(),
            kind=kind.code,
            from_agency=sender.code,
            to_agency=recipient.code,
            case_number=headers.case_number,
            purpose=headers.purpose,
            client_id=caller.client_id,
            operator_id=headers.operator_id,
            content=content,
            content_sha256=hashlib.sha256(content).hexdigest(),
            created_at=now,
            due_at=due,
        )
        copies = copy_rows(parsed, new)
        draft.record_ids = [new.id, *(c.id for c in copies)]
        draft.released = sorted(record)
        draft.body_sha256 = new.content_sha256
        draft.action = {**draft.action, "delivery": new.id}
        if copies:
            draft.action["copies"] = [c.id for c in copies]

        def hold(session: Session) -> None:  # the limit counted again, locked, as stored
            assert case is not None
            enforce_per_case_limit(session, kind, new.case_number, case)

        def commit(index: int) -> dict[str, Any]:
            return self._store(new, copies, key, parsed.request_sha256, index, hold)

        def after(_: dict[str, Any]) -> None:
            self.on_created()

        return Answer(201, None, {"Location": f"/v1/deliveries/{new.id}"}, commit, after)

    def _replay(self, client_id: str, key: str, sha: str) -> dict[str, Any] | None:
        with session_scope(self.factory) as session:
            repo = DeliveryRepository(session)
            used = repo.by_key(client_id, key)
            if used is None:
                return None
            if used.request_sha256 != sha:
                raise Conflict(
                    "the Idempotency-Key was used with another request",
                    extra={"delivery": used.delivery_id},
                )
            found = repo.get(used.delivery_id)
            assert found is not None
            return render(repo, found)

    def _store(
        self,
        new: NewDelivery,
        copies: list[NewDelivery],
        key: str,
        sha: str,
        index: int,
        hold: Callable[[Session], None] = lambda session: None,
    ) -> dict[str, Any]:
        # The key was found unused before the audit entry (``_replay``); the document is
        # rendered in the creating transaction. Only a concurrent duplicate reads again.
        document: dict[str, Any] = {}

        def build(repo: DeliveryRepository) -> Any:
            hold(repo.session)
            row = repo.create(new, key=key, request_sha256=sha, audit_index=index)
            for copy in copies:  # 抄送: stored with it, or not at all
                repo.create(copy, key=None, request_sha256=sha, audit_index=index)
            document.update(render(repo, row))
            return row

        try:
            delivery, created = create_idempotent(
                self.factory,
                client_id=new.client_id,
                key=key,
                request_sha256=sha,
                build=build,
                looked_up=True,
            )
        except IdempotencyConflict as exc:
            raise Conflict(
                "the Idempotency-Key was used with another request",
                extra={"delivery": exc.delivery_id},
            ) from None
        if created:
            return document
        with session_scope(self.factory) as session:
            repo = DeliveryRepository(session)
            found = repo.get(delivery.id)
            assert found is not None
            return render(repo, found)

    def _access(
        self,
        parsed: DeliveryRequest,  # its ``recipient``: the main recipient or a copy agency
        fields: frozenset[str] | None,
        record_id: str | None,
        headers: ExchangeHeaders,
        case: CaseContext | None,
        purpose: str,
    ) -> AccessRequest:
        """The recipient's read of the delivered record, as the policy decides it."""
        return AccessRequest(
            requester_agency=parsed.recipient.code,
            requester_kind=parsed.recipient.kind,
            resource=parsed.kind.resource,
            purpose=purpose,
            operator_id=headers.operator_id,
            time=self.clock(),
            case_number=headers.case_number,
            case=case,
            requested_fields=fields,
            record_id=record_id,
            channel="delivery",
        )

    async def _own_record(
        self,
        parsed: DeliveryRequest,
        headers: ExchangeHeaders,
        case: CaseContext | None,
        purpose: str,
        draft: EntryDraft,
    ) -> dict[str, Any]:
        """``record_id``: the sender's own record of the case, from its agency's system.

        Asked for only if the sender's kind owns the resource and the sender handles the case,
        and the recipient may read such a record at all (else nothing is fetched); the record
        must belong to the case, and is then checked as an inline one.
        """
        resource = self.standard.resource(parsed.kind.resource)
        record_id = parsed.record_id
        assert record_id is not None
        if resource.owner != parsed.sender.kind:
            raise UnprocessableContent(
                f"record_id: {resource.name} records are kept by {resource.owner} agencies; "
                "send the record inline",
                [{"field": "record_id", "reason": f"not a {parsed.sender.kind} resource"}],
            )
        assert case is not None  # the sender handles it (checked in create)
        # May the recipient receive such a record at all, as the delivery leaves the case (the
        # record not known yet: as if it named the recipient; decided again once fetched).
        received = as_received(self.standard, case, parsed.kind, parsed.recipient, resource, None)
        access = self._access(parsed, None, record_id, headers, received, purpose)
        decision = self.policy.current.decide(access)
        if not decision.allowed:
            draft.rule_ids = sorted({*draft.rule_ids, *decision.rule_ids})
            raise Forbidden(
                f"{parsed.recipient.code} may not receive this {resource.name} for {purpose}: "
                f"{decision.reason}",
                extra={"rule_ids": list(decision.rule_ids)},
            )
        found = await self.exchange.fetch_for_delivery(resource, record_id, decision, draft)
        if found is None:
            raise UnprocessableContent(
                f"record_id: your agency's system has no {resource.name} {record_id}",
                [{"field": "record_id", "reason": "no such record in your agency's system"}],
            )
        if found.get("case_id") not in (None, case.case_id):
            raise UnprocessableContent(
                "record_id: the record belongs to another case",
                [{"field": "record_id", "reason": "not a record of the case in X-Case-Number"}],
            )
        record = parsed.checked_record(self.standard, dict(found))
        parsed.deadline(record, self.clock())
        return record

    def _check_addressee(self, parsed: DeliveryRequest, record: dict[str, Any]) -> None:
        """A record naming another agency of the recipient's kind as its party is not sent."""
        resource = self.standard.resource(parsed.kind.resource)
        field = recipient_mismatch(self.standard, resource, record, parsed.recipient)
        if field is not None:
            reason = f"names another {parsed.recipient.kind} agency, not {parsed.recipient.code}"
            raise UnprocessableContent(
                f"record.{field}: {reason}; the delivery goes to the agency its record names",
                [{"field": f"record.{field}", "reason": reason}],
            )

    async def check_content(
        self,
        parsed: DeliveryRequest,
        record: dict[str, Any],
        headers: ExchangeHeaders,
        case: CaseContext | None,
        purpose: str,
        draft: EntryDraft,
    ) -> None:
        """The choke point: the content decided for the recipient, as a read by it."""
        read = RecipientRead(
            parsed.kind,
            parsed.recipient,
            purpose,
            headers.case_number,
            headers.operator_id,
            case,
        )
        try:
            decision, verdict = await decide_content(
                self.standard, self.policy, self.exchange, read, record, self.clock()
            )
        except Forbidden as exc:
            draft.rule_ids = sorted({*draft.rule_ids, *exc.extra.get("rule_ids", [])})
            raise
        draft.rule_ids = sorted({*draft.rule_ids, *verdict.rule_ids, *decision.rule_ids})

    # -- answer ----------------------------------------------------------------------------

    async def answer(
        self, delivery_id: str, body: bytes, caller: Principal, draft: EntryDraft
    ) -> Answer:
        draft.record_ids = [delivery_id[:64]]
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UnprocessableContent(
                "body: must be a JSON object", [{"field": "body", "reason": "a JSON object"}]
            )
        unknown = sorted(set(data) - {"decision", "reason"})
        if unknown:
            raise UnprocessableContent(
                f"{unknown[0][:64]}: unknown key", [{"field": unknown[0][:64], "reason": "unknown"}]
            )
        with session_scope(self.factory) as session:
            delivery = DeliveryRepository(session).get(delivery_id)
            if delivery is None or caller.agency not in (delivery.from_agency, delivery.to_agency):
                raise not_found(delivery_id)
            kind = self.standard.delivery_kind(delivery.kind)
            decision, reason = check_answer(
                delivery,
                delivery_id,
                kind,
                agency=caller.agency,
                decision=data.get("decision"),
                reason=data.get("reason"),
            )
            draft.resource, draft.owner_agency = kind.resource, delivery.from_agency
            draft.body_sha256 = delivery.content_sha256
        draft.action = {"event": "answered", "delivery": delivery_id, "decision": decision}

        def commit(index: int) -> dict[str, Any]:
            at = self.clock()
            with session_scope(self.factory) as session:
                repo = DeliveryRepository(session)
                # SQLite: the write lock before the read, or a commit by another connection
                # in between (the audit writer's, any time) fails the update at once.
                repo.lock_for_writing()
                row = repo.get(delivery_id)
                assert row is not None
                done = record_answer(
                    repo,
                    row,
                    decision=decision,
                    reason=reason,
                    at=at,
                    audit_index=index,
                    signer=self.signer(),
                )
                if not done:
                    raise Conflict(f"the delivery was answered meanwhile ({row.status})")
                return render(repo, row)

        def after(document: dict[str, Any]) -> None:
            self.exchange.forget_case(document["case_number"])  # the step may have moved it

        return Answer(200, None, {}, commit, after)
