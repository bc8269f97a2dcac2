"""Answers, receipts, extensions, the delivery document and the figures (issue 15)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.checkpoint import CheckpointSigner
from gateway.db import session_scope
from gateway.deliveries.deadlines import CHINA, due_at
from gateway.deliveries.lifecycle import (
    check_answer,
    delivery_document,
    record_answer,
    record_extension,
)
from gateway.deliveries.receipts import load_receipt_signer
from gateway.deliveries.repository import DeliveryRepository, NewDelivery, new_delivery_id
from gateway.deliveries.stats import delivery_stats, median, nearest_rank
from gateway.errors import Conflict, Forbidden, GatewayError, NotFound, UnprocessableContent
from gateway.standard import Standard
from tests.deliveries.test_receipts import independent_verify

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in China


@pytest.fixture
def signer(tmp_path: Path) -> CheckpointSigner:
    return load_receipt_signer(tmp_path, "gateway.test/audit")


def _make(
    factory: sessionmaker[Session],
    standard: Standard,
    kind: str = "prosecution_transfer",
    *,
    at: datetime = T0,
    to: str = "JC640104",
    record: dict[str, object] | None = None,
) -> str:
    spec = standard.delivery_kind(kind)
    content = b'{"record":{}}'
    new = NewDelivery(
        id=new_delivery_id(),
        kind=kind,
        from_agency="GA640104",
        to_agency=to,
        case_number="A6401040000002021030042",
        purpose=spec.purpose_for(spec.senders[0]),
        client_id="police",
        operator_id="op",
        content=content,
        content_sha256=hashlib.sha256(content).hexdigest(),
        created_at=at,
        due_at=due_at(spec, record or {}, at),
    )
    with session_scope(factory) as session:
        DeliveryRepository(session).create(new, key=new.id, request_sha256="0" * 64, audit_index=1)
    return new.id


def _answer(
    factory: sessionmaker[Session],
    standard: Standard,
    signer: CheckpointSigner,
    delivery_id: str,
    *,
    agency: str = "JC640104",
    decision: object = "accepted",
    reason: object = None,
    at: datetime = T0 + timedelta(days=3),
    audit_index: int = 9,
) -> bool:
    with session_scope(factory) as session:
        repo = DeliveryRepository(session)
        delivery = repo.get(delivery_id)
        kind = standard.delivery_kind(delivery.kind if delivery else "arrest_request")
        checked = check_answer(
            delivery, delivery_id, kind, agency=agency, decision=decision, reason=reason
        )
        assert delivery is not None
        return record_answer(
            repo,
            delivery,
            decision=checked[0],
            reason=checked[1],
            at=at,
            audit_index=audit_index,
            signer=signer,
        )


def _document(factory: sessionmaker[Session], delivery_id: str) -> dict[str, object]:
    with session_scope(factory) as session:
        repo = DeliveryRepository(session)
        delivery = repo.get(delivery_id)
        assert delivery is not None
        return delivery_document(delivery, repo.events(delivery_id))


def test_an_accepted_delivery_carries_a_receipt_that_verifies(
    delivery_db: sessionmaker[Session], standard: Standard, signer: CheckpointSigner
) -> None:
    delivery_id = _make(delivery_db, standard)
    assert _answer(delivery_db, standard, signer, delivery_id)
    doc = _document(delivery_db, delivery_id)
    assert list(doc) == [
        "id",
        "kind",
        "from_agency",
        "to_agency",
        "case_number",
        "status",
        "created_at",
        "due_at",
        "content_sha256",
        "events",
        "receipt",
        "copy_of",
        "copies",
    ]
    assert doc["copy_of"] is None
    assert doc["copies"] == []
    assert doc["status"] == "accepted"
    assert doc["due_at"] == "2026-04-02T16:00:00+00:00"  # end of 2 April in China
    assert doc["events"] == [
        {"type": "created", "at": "2026-03-02T01:00:00+00:00", "audit_index": 1},
        {
            "type": "answered",
            "at": "2026-03-05T01:00:00+00:00",
            "audit_index": 9,
            "decision": "accepted",
        },
    ]
    fields = independent_verify(str(doc["receipt"]), signer.verifier_text())
    assert fields["delivery"] == delivery_id
    assert fields["decision"] == "accepted"
    assert fields["audit-index"] == "9"
    assert fields["content-sha256"] == doc["content_sha256"]
    assert (fields["from"], fields["to"], fields["kind"]) == (
        "GA640104",
        "JC640104",
        "prosecution_transfer",
    )


def test_returned_needs_a_reason_and_answers_once(
    delivery_db: sessionmaker[Session], standard: Standard, signer: CheckpointSigner
) -> None:
    delivery_id = _make(delivery_db, standard)
    for reason in (None, "  ", 5, "x" * 501):
        with pytest.raises(UnprocessableContent) as info:
            _answer(delivery_db, standard, signer, delivery_id, decision="returned", reason=reason)
        assert info.value.extra["errors"][0]["field"] == "reason"
    with pytest.raises(UnprocessableContent) as info:
        _answer(delivery_db, standard, signer, delivery_id, decision="maybe")
    assert info.value.extra["errors"][0]["field"] == "decision"
    assert _answer(
        delivery_db, standard, signer, delivery_id, decision="returned", reason="证据不足"
    )
    doc = _document(delivery_db, delivery_id)
    assert doc["status"] == "returned"
    assert doc["events"][-1]["reason"] == "证据不足"  # type: ignore[index]
    with pytest.raises(Conflict, match="already returned"):
        _answer(delivery_db, standard, signer, delivery_id)


def test_only_the_recipient_answers_and_third_parties_get_the_missing_404(
    delivery_db: sessionmaker[Session], standard: Standard, signer: CheckpointSigner
) -> None:
    delivery_id = _make(delivery_db, standard)
    with pytest.raises(Forbidden):
        _answer(delivery_db, standard, signer, delivery_id, agency="GA640104")
    refusals: list[GatewayError] = []
    for agency, target in (("FY640104", delivery_id), ("JC640104", "DL" + "0" * 24)):
        with pytest.raises(NotFound) as info:
            _answer(delivery_db, standard, signer, target, agency=agency)
        refusals.append(info.value)
    # The same status and the same text but for the id the caller gave.
    assert refusals[0].detail.replace(delivery_id, "X") == refusals[1].detail.replace(
        "DL" + "0" * 24, "X"
    )
    assert _document(delivery_db, delivery_id)["status"] == "pending"


def test_a_concurrent_second_answer_changes_nothing(
    delivery_db: sessionmaker[Session], standard: Standard, signer: CheckpointSigner
) -> None:
    delivery_id = _make(delivery_db, standard)
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        stale = repo.get(delivery_id)
        assert stale is not None
        session.expunge(stale)
    assert _answer(delivery_db, standard, signer, delivery_id, audit_index=9)
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        late = record_answer(
            repo,
            session.merge(stale, load=False),
            decision="returned",
            reason="late",
            at=T0,
            audit_index=10,
            signer=signer,
        )
    assert late is False
    doc = _document(delivery_db, delivery_id)
    assert doc["status"] == "accepted"
    assert [e["type"] for e in doc["events"]] == ["created", "answered"]  # type: ignore[index]


def test_extensions_are_events_with_their_basis(
    delivery_db: sessionmaker[Session], standard: Standard
) -> None:
    delivery_id = _make(delivery_db, standard)
    kind = standard.delivery_kind("prosecution_transfer")
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        delivery = repo.get(delivery_id)
        assert delivery is not None
        new = record_extension(
            repo, delivery, kind, {}, "major_complex", at=T0 + timedelta(days=20), audit_index=4
        )
        assert new == datetime(2026, 4, 18, tzinfo=CHINA)
        with pytest.raises(UnprocessableContent, match="already applied"):
            record_extension(repo, delivery, kind, {}, "major_complex", at=T0, audit_index=5)
    doc = _document(delivery_db, delivery_id)
    assert doc["due_at"] == "2026-04-17T16:00:00+00:00"
    assert doc["events"][-1] == {  # type: ignore[index]
        "type": "extended",
        "at": "2026-03-22T01:00:00+00:00",
        "audit_index": 4,
        "extension": "major_complex",
        "basis": "刑事诉讼法 第172条第1款",
        "due_at": "2026-04-17T16:00:00+00:00",
    }
    undated = _make(delivery_db, standard, "custody_transfer", to="GA640105")
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        delivery = repo.get(undated)
        assert delivery is not None
        with pytest.raises(UnprocessableContent, match="no statutory deadline"):
            record_extension(
                repo,
                delivery,
                standard.delivery_kind("custody_transfer"),
                {},
                "x",
                at=T0,
                audit_index=None,
            )


def test_the_figures(
    delivery_db: sessionmaker[Session], standard: Standard, signer: CheckpointSigner
) -> None:
    ids = [_make(delivery_db, standard, "arrest_request") for _ in range(4)]
    _answer(delivery_db, standard, signer, ids[0], at=T0 + timedelta(hours=1))
    _answer(
        delivery_db,
        standard,
        signer,
        ids[1],
        decision="returned",
        reason="r",
        at=T0 + timedelta(hours=3),
    )
    _answer(delivery_db, standard, signer, ids[2], at=T0 + timedelta(days=9))  # late
    _make(delivery_db, standard, "prosecution_transfer", to="JC640105")
    now = T0 + timedelta(days=10)
    with session_scope(delivery_db) as session:
        rows = delivery_stats(session, now=now)
        mine = delivery_stats(session, now=now, agencies=["JC640105"])
        none = delivery_stats(session, now=now, agencies=["SF640104"])
    arrest = rows[0]
    assert (arrest["agency"], arrest["kind"], arrest["count"]) == ("JC640104", "arrest_request", 4)
    assert arrest["by_status"] == {
        "pending": 1,
        "delivered": 0,
        "accepted": 2,
        "returned": 1,
        "failed": 0,
    }
    assert arrest["answered"] == 3
    assert arrest["median_seconds_to_answer"] == 3 * 3600
    assert arrest["p90_seconds_to_answer"] == 9 * 86400
    assert (arrest["overdue"], arrest["answered_late"]) == (1, 1)
    assert arrest["returned_rate"] == 0.3333
    assert [r["kind"] for r in mine] == ["prosecution_transfer"]
    assert mine[0]["median_seconds_to_answer"] is None
    assert mine[0]["returned_rate"] is None
    assert none == []


def test_median_and_nearest_rank() -> None:
    assert median([]) is None
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 2, 3]) == 2
    assert nearest_rank([], 90) is None
    assert nearest_rank(list(range(1, 11)), 90) == 9
    assert nearest_rank([5], 90) == 5
