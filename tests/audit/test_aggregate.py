"""Aggregated entries: one per key and interval, at most max_keys + 1 per interval, written
when the interval ends; what they hold (and what they never hold)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.audit.aggregate import OTHER_SOURCES, AnonymousRequests, FailedTokenRequests
from tests.audit.conftest import AuditLog


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _written(log: AuditLog, futures: list[Any]) -> list[dict[str, Any]]:
    return [log.service.entry(f.result(timeout=30)).document for f in futures]


def test_one_entry_per_source_route_and_interval_written_when_it_ends(
    audit_log: AuditLog,
) -> None:
    clock = Clock(1_000_040.0)  # 20 s into the interval [1_000_020, 1_000_080)
    anonymous = AnonymousRequests(audit_log.writer, interval_s=60, max_keys=10, clock=clock)
    for _ in range(3):
        anonymous.count("10.0.0.1", "GET /v1/me", 401)
    anonymous.count("10.0.0.1", "GET /v1/me", 429)
    anonymous.count("10.0.0.2", "GET /v1/me", 401)
    assert anonymous.flush() == []  # the interval has not ended
    assert anonymous.pending() == 5
    clock.now += 45  # the next interval
    anonymous.count("10.0.0.1", "GET /v1/me", 401)
    entries = _written(audit_log, anonymous.flush())
    assert [e["aggregate"]["source"] for e in entries] == ["10.0.0.1", "10.0.0.2"]
    first = entries[0]
    assert first["kind"] == "anonymous"
    assert first["requester"] == {"agency": None, "client_id": None, "operator_id": None}
    assert first["aggregate"] == {
        "source": "10.0.0.1",
        "route": "GET /v1/me",
        "from": _iso(1_000_020),
        "until": _iso(1_000_080),
        "count": 4,
        "statuses": {"401": 3, "429": 1},
    }
    assert first["status"] == 401
    assert anonymous.pending() == 1  # the new interval's count waits
    [last] = _written(audit_log, anonymous.flush(everything=True))  # e.g. at shutdown
    assert last["aggregate"]["count"] == 1
    assert audit_log.verify().ok


def test_more_keys_than_allowed_share_one_overflow_entry(audit_log: AuditLog) -> None:
    clock = Clock(2_000_000.0)
    anonymous = AnonymousRequests(audit_log.writer, interval_s=60, max_keys=3, clock=clock)
    for host in range(50):
        anonymous.count(f"10.1.0.{host}", "GET /v1/catalog", 401)
    entries = _written(audit_log, anonymous.flush(everything=True))
    assert len(entries) == 4
    assert [
        e["aggregate"]["count"] for e in entries if e["aggregate"]["source"] == OTHER_SOURCES
    ] == [47]


def test_caller_chosen_text_is_bounded_and_printable(audit_log: AuditLog) -> None:
    clock = Clock(3_000_000.0)
    tokens = FailedTokenRequests(
        audit_log.writer,
        agency_of=lambda client_id: "FY640104" if client_id == "gw-known" else None,
        interval_s=60,
        max_keys=10,
        clock=clock,
    )
    tokens.count("gw-known", True, "10.2.0.1", "invalid_client")
    for n in range(8):
        tokens.count(f"guess\x00{n}" + "x" * 200, False, "10.2.0.1", "invalid_client")
    tokens.count(None, False, "10.2.0.1", "invalid_request")
    entries = {
        (e["requester"]["client_id"] or e["aggregate"].get("claimed_client_ids", ["-"])[0][:5]): e
        for e in _written(audit_log, tokens.flush(everything=True))
    }
    known = entries["gw-known"]
    assert (known["requester"]["agency"], known["status"]) == ("FY640104", 401)
    guesses = entries["guess"]
    assert guesses["requester"]["client_id"] is None
    assert guesses["aggregate"]["distinct_claimed_client_ids"] == 8
    samples = guesses["aggregate"]["claimed_client_ids"]
    assert len(samples) == 5
    for sample in samples:
        assert len(sample) <= 64
        assert "\x00" not in sample
        assert sample.isprintable()
    assert entries["-"]["status"] == 400  # no client id at all: "(none)"
    assert entries["-"]["aggregate"]["outcomes"] == {"invalid_request": 1}


def test_a_stopped_writer_loses_the_counts_not_the_gateway(tmp_path: Path) -> None:
    from tests.audit.conftest import open_audit_log

    log = open_audit_log(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}")
    anonymous = AnonymousRequests(log.writer, interval_s=60, max_keys=3, clock=Clock(0.0))
    anonymous.count("10.0.0.1", "GET /v1/me", 401)
    log.writer.stop()
    assert anonymous.flush(everything=True) == []  # nothing to write to: logged, not raised
    log.close()
