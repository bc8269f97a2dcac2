"""Synthetic but realistic audit entries: the agencies, resources, purposes, rules and cases of
an exchange log, with a skew (a few busy bureaus, cases that come and go)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.audit.entry import AuditKind, Decision, EntryDraft

__all__ = [
    "AGENCIES",
    "NEGATIVE_ITEMS",
    "PURPOSES",
    "RESOURCES",
    "EntrySource",
    "SyntheticEntry",
    "rule_id",
]

_KINDS = [("GA", "public_security"), ("JC", "procuratorate"), ("FY", "court"),
          ("JY", "prison"), ("SF", "justice")]  # fmt: skip
_DIVISIONS = ["640104", "640105", "640106", "640121", "640122", "640181", "640202", "640205",
              "640302", "640303", "640323", "640402", "640502", "640100"]  # fmt: skip
AGENCIES: list[str] = [f"{prefix}{division}" for prefix, _ in _KINDS for division in _DIVISIONS]
RESOURCES = ["person", "case", "indictment", "judgment", "coercive_measure",
             "sentence_execution", "community_correction", "arrest_review"]  # fmt: skip
PURPOSES = ["ARREST_REVIEW", "PROSECUTION_REVIEW", "TRIAL", "PRIOR_RECORD_CHECK",
            "SENTENCE_EXECUTION", "COMMUNITY_CORRECTION", "INVESTIGATION", "OVERSIGHT"]  # fmt: skip
NEGATIVE_ITEMS = ["nl.sealed-juvenile", "nl.protected-witness", "nl.sexual-offence-victim",
                  "nl.state-secret", "nl.minor-identity"]  # fmt: skip
FIELDS = {
    "person": ["address", "birth_date", "case_id", "ethnicity", "id_number", "name", "person_id",
               "phone", "role", "sex"],
    "case": ["case_id", "case_name", "case_type", "filed_on", "handling_agency", "stage",
             "summary"],
}  # fmt: skip
DEFAULT_FIELDS = ["case_id", "decided_on", "decision_no", "handling_agency", "id", "text"]
# Busy bureaus dominate: agency i gets weight 1 / (i + 1) (Zipf).
_AGENCY_WEIGHTS = [1.0 / (i + 1) for i in range(len(AGENCIES))]


def rule_id(agency: str, resource: str, purpose: str) -> str:
    """The permission that grants ``agency`` the pair: one per (agency kind, resource, purpose)."""
    return f"{agency[:2].lower()}.{purpose.lower().replace('_', '-')}.{resource}"


@dataclass(frozen=True, slots=True)
class SyntheticEntry:
    """Every column of an exchange entry, plus the rule ids the policy named."""

    time: datetime
    request_id: str
    requester_agency: str
    client_id: str
    operator_id: str
    owner_agency: str
    resource: str
    record_ids: tuple[str, ...]
    purpose: str
    case_number: str
    decision: str
    status: int
    released: tuple[str, ...]
    withheld: tuple[str, ...]
    masked: tuple[str, ...]
    rule_ids: tuple[str, ...]
    policy_version: str
    upstream_status: int | None
    upstream_latency_us: int | None
    body_sha256: str | None
    detail: str | None

    def draft(self) -> EntryDraft:
        return EntryDraft(
            kind=AuditKind.EXCHANGE,
            request_id=self.request_id,
            requester_agency=self.requester_agency,
            client_id=self.client_id,
            operator_id=self.operator_id,
            owner_agency=self.owner_agency,
            resource=self.resource,
            record_ids=list(self.record_ids),
            purpose=self.purpose,
            case_number=self.case_number,
            decision=Decision(self.decision),
            status=self.status,
            released=list(self.released),
            withheld=list(self.withheld),
            masked=list(self.masked),
            rule_ids=list(self.rule_ids),
            policy_version=self.policy_version,
            upstream_status=self.upstream_status,
            upstream_latency_us=self.upstream_latency_us,
            body_sha256=self.body_sha256,
            detail=self.detail,
            time=self.time,
        )


class EntrySource:
    """A seeded stream of entries ``0, 1, 2, …``, about 20 per case, ~12 entries a second.

    Cases open and close as the log grows: each entry names one of the ~64 currently open
    cases of its requester, so a case's entries cluster in time as they do in production.
    """

    def __init__(self, seed: int = 2025, start: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.start = start or datetime(2025, 1, 1, tzinfo=UTC)
        self.count = 0
        self.cases_opened = 0
        self._open: list[str] = [self._new_case() for _ in range(64)]

    def _new_case(self) -> str:
        self.cases_opened += 1
        n = self.cases_opened
        court = _DIVISIONS[n % len(_DIVISIONS)]
        return f"（{2025 + n // 400_000}）宁{court}刑初{n}号"

    def next(self) -> SyntheticEntry:
        rng = self.rng
        n = self.count
        self.count += 1
        slot = rng.randrange(len(self._open))
        if rng.random() < 1 / 20:  # on average a case is named by ~20 entries, then closes
            self._open[slot] = self._new_case()
        case_number = self._open[slot]
        requester = rng.choices(AGENCIES, _AGENCY_WEIGHTS)[0]
        owner = AGENCIES[rng.randrange(len(AGENCIES))]
        resource = RESOURCES[min(int(rng.expovariate(0.6)), len(RESOURCES) - 1)]
        purpose = PURPOSES[rng.randrange(len(PURPOSES))]
        roll = rng.random()
        fields = FIELDS.get(resource, DEFAULT_FIELDS)
        records = tuple(f"R{rng.randrange(10**9):09d}" for _ in range(1 + int(roll * 3)))
        grant = rule_id(requester, resource, purpose)
        withheld: tuple[str, ...] = ()
        masked: tuple[str, ...] = ()
        if roll < 0.85:
            decision, status = "allow", 200
            rules = [grant]
            if rng.random() < 0.1:
                item = NEGATIVE_ITEMS[rng.randrange(len(NEGATIVE_ITEMS))]
                rules.append(item)
                withheld = (fields[0],)
            if resource == "person":
                masked = ("id_number", "phone")
            released = tuple(f for f in fields if f not in withheld)
            upstream: int | None = 200
            latency: int | None = int(rng.lognormvariate(9.5, 0.5))
            body: str | None = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
            detail = None
        elif roll < 0.95:
            decision, status = "deny", 403
            rules, released, upstream, latency, body = [], (), None, None, None
            detail = "no permission grants this request"
        else:
            decision, status = "error", 504
            rules, released, upstream, latency, body = [grant], (), None, 5_000_000, None
            detail = "upstream_timeout: no answer within 5 s"
        return SyntheticEntry(
            time=self.start + timedelta(microseconds=n * 83_000 + rng.randrange(1000)),
            request_id=f"{rng.getrandbits(128):032x}",
            requester_agency=requester,
            client_id=f"{requester.lower()}-exchange",
            operator_id=f"{requester}-{rng.randrange(200):04d}",
            owner_agency=owner,
            resource=resource,
            record_ids=records,
            purpose=purpose,
            case_number=case_number,
            decision=decision,
            status=status,
            released=released,
            withheld=withheld,
            masked=masked,
            rule_ids=tuple(sorted(set(rules))),
            policy_version="2025.06.01-7f3a9c2e",
            upstream_status=upstream,
            upstream_latency_us=latency,
            body_sha256=body,
            detail=detail,
        )
