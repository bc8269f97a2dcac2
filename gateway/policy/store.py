"""Policy versions, proposals, reviews and publications in the database: the administered
state of the lists. Every table is append-only (migration 0005: triggers refuse UPDATE,
DELETE and TRUNCATE; on PostgreSQL the application role may only SELECT and INSERT).

* A **version** is a whole policy set (the permissions, negative-list and test files), named
  by its content hash; ``content_sha256`` is the SHA-256 of the stored ``files`` bytes, checked
  whenever a version is loaded.
* A **proposal** asks for a version to be put in force (a new ``candidate``, a ``rollback`` to
  an earlier approved one) or to be accepted as reviewed (the ``initial`` import from files).
  It records its **base**: the version in force when it was made.
* A **review** approves or rejects one proposal; the primary key is the proposal, so of two
  reviewers racing (on any worker, either backend) exactly one is recorded.
* **Publications** are the log of what was in force; the latest names the set in force. Each
  names the publication it follows (``previous_seq``, unique): two publications can never
  follow the same one, so an approval that raced another is refused, never silently
  layered over it. Workers follow the log (see :mod:`gateway.policy.follower`).

A version's status is derived from its proposals and reviews (:meth:`PolicyRepository.status`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import orjson
from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from gateway.db import Base, UTCDateTime, utcnow

__all__ = [
    "PolicyProposal",
    "PolicyPublication",
    "PolicyRepository",
    "PolicyReview",
    "PolicyVersion",
    "ProposalKind",
    "PublicationKind",
    "Verdict",
    "VersionState",
    "VersionStatus",
    "content_sha256",
]

# INTEGER on SQLite: only an INTEGER PRIMARY KEY is its auto-incrementing rowid.
_SEQUENCE = BigInteger().with_variant(Integer, "sqlite")


class VersionStatus(StrEnum):
    CANDIDATE = "candidate"  # a proposal for it waits for a second administrator
    APPROVED = "approved"
    REJECTED = "rejected"
    IMPORTED = "imported"  # the initial import from files, not reviewed yet
    FREEZE = "freeze"  # the deny-all set an emergency freeze puts in force


class ProposalKind(StrEnum):
    CANDIDATE = "candidate"
    ROLLBACK = "rollback"
    INITIAL = "initial"


class Verdict(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class PublicationKind(StrEnum):
    INITIAL = "initial"
    APPROVAL = "approval"
    ROLLBACK = "rollback"
    FREEZE = "freeze"


def content_sha256(files: bytes) -> str:
    return hashlib.sha256(files).hexdigest()


class PolicyVersion(Base):
    __tablename__ = "policy_versions"

    version_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    author: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text)
    files: Mapped[bytes] = mapped_column(LargeBinary)
    content_sha256: Mapped[str] = mapped_column(String(64))

    def file_map(self) -> dict[str, str]:
        files: dict[str, str] = orjson.loads(self.files)
        return files

    def intact(self) -> bool:
        """Do the stored files still hash to the content hash recorded with them?"""
        return content_sha256(bytes(self.files)) == self.content_sha256


class PolicyProposal(Base):
    __tablename__ = "policy_proposals"

    proposal_id: Mapped[int] = mapped_column(_SEQUENCE, primary_key=True, autoincrement=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("policy_versions.version_id"))
    kind: Mapped[str] = mapped_column(String(16))
    base_version_id: Mapped[str | None] = mapped_column(String(80))
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str] = mapped_column(Text)


class PolicyReview(Base):
    __tablename__ = "policy_reviews"

    proposal_id: Mapped[int] = mapped_column(
        _SEQUENCE, ForeignKey("policy_proposals.proposal_id"), primary_key=True
    )
    verdict: Mapped[str] = mapped_column(String(16))
    reviewer: Mapped[str] = mapped_column(String(64))
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str] = mapped_column(Text)


class PolicyPublication(Base):
    __tablename__ = "policy_publications"

    seq: Mapped[int] = mapped_column(_SEQUENCE, primary_key=True, autoincrement=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("policy_versions.version_id"))
    kind: Mapped[str] = mapped_column(String(16))
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The publication this one follows (0 for the first): unique, so the log never forks.
    previous_seq: Mapped[int] = mapped_column(BigInteger)
    # The approved proposal that published it (none for the import and a freeze).
    proposal_id: Mapped[int | None] = mapped_column(_SEQUENCE)

    __table_args__ = (Index("uq_policy_publications_previous_seq", "previous_seq", unique=True),)


@dataclass(frozen=True)
class VersionState:
    """A version with what its proposals and reviews say about it."""

    version: PolicyVersion
    status: VersionStatus
    latest: PolicyProposal | None
    review: PolicyReview | None
    open: PolicyProposal | None
    approved: bool  # approved once (a pending rollback to it makes its status "candidate")


class PolicyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- versions -----------------------------------------------------------------------------

    def version(self, version_id: str) -> PolicyVersion | None:
        return self.session.get(PolicyVersion, version_id)

    def versions(self) -> Sequence[PolicyVersion]:
        return self.session.scalars(
            select(PolicyVersion).order_by(PolicyVersion.created_at.desc())
        ).all()

    def add_version(
        self, version_id: str, files: dict[str, str], author: str, comment: str
    ) -> PolicyVersion:
        blob = orjson.dumps(files)
        version = PolicyVersion(
            version_id=version_id,
            created_at=utcnow(),
            author=author,
            comment=comment,
            files=blob,
            content_sha256=content_sha256(blob),
        )
        self.session.add(version)
        self.session.flush()
        return version

    # --- proposals and reviews ----------------------------------------------------------------

    def propose(
        self,
        version_id: str,
        kind: ProposalKind,
        by: str,
        comment: str,
        base_version_id: str | None,
    ) -> PolicyProposal:
        proposal = PolicyProposal(
            version_id=version_id,
            kind=str(kind),
            base_version_id=base_version_id,
            proposed_by=by,
            proposed_at=utcnow(),
            comment=comment,
        )
        self.session.add(proposal)
        self.session.flush()
        return proposal

    def proposals(self, version_id: str) -> Sequence[PolicyProposal]:
        return self.session.scalars(
            select(PolicyProposal)
            .where(PolicyProposal.version_id == version_id)
            .order_by(PolicyProposal.proposal_id)
        ).all()

    def review_of(self, proposal_id: int) -> PolicyReview | None:
        return self.session.get(PolicyReview, proposal_id)

    def add_review(
        self, proposal_id: int, verdict: Verdict, reviewer: str, comment: str
    ) -> PolicyReview:
        """Record the review; an IntegrityError if the proposal was reviewed meanwhile."""
        review = PolicyReview(
            proposal_id=proposal_id,
            verdict=str(verdict),
            reviewer=reviewer,
            reviewed_at=utcnow(),
            comment=comment,
        )
        self.session.add(review)
        self.session.flush()
        return review

    def state(self, version: PolicyVersion) -> VersionState:
        proposals = self.proposals(version.version_id)
        reviews = {p.proposal_id: self.review_of(p.proposal_id) for p in proposals}
        open_ = next((p for p in reversed(proposals) if reviews[p.proposal_id] is None), None)
        verdicts = {r.verdict for r in reviews.values() if r is not None}
        latest = proposals[-1] if proposals else None
        if open_ is not None:
            status = (
                VersionStatus.IMPORTED
                if open_.kind == ProposalKind.INITIAL
                else VersionStatus.CANDIDATE
            )
        elif Verdict.APPROVED in verdicts:
            status = VersionStatus.APPROVED
        elif Verdict.REJECTED in verdicts:
            status = VersionStatus.REJECTED
        else:
            status = VersionStatus.FREEZE  # put in force without a proposal: the freeze set
        reviewed = [r for r in reviews.values() if r is not None]
        last_review = max(reviewed, key=lambda r: r.proposal_id) if reviewed else None
        return VersionState(
            version, status, latest, last_review, open_, Verdict.APPROVED in verdicts
        )

    # --- publications -------------------------------------------------------------------------

    def publish(
        self,
        version_id: str,
        kind: PublicationKind,
        by: str,
        *,
        after: int,
        proposal_id: int | None = None,
    ) -> PolicyPublication:
        """Append a publication following publication ``after`` (0: the first).

        An IntegrityError if another publication follows ``after`` already.
        """
        publication = PolicyPublication(
            version_id=version_id,
            kind=str(kind),
            published_by=by,
            published_at=utcnow(),
            previous_seq=after,
            proposal_id=proposal_id,
        )
        self.session.add(publication)
        self.session.flush()
        return publication

    def current(self) -> PolicyPublication | None:
        return self.session.scalars(
            select(PolicyPublication).order_by(PolicyPublication.seq.desc()).limit(1)
        ).first()

    def publications(self, limit: int = 100) -> Sequence[PolicyPublication]:
        return self.session.scalars(
            select(PolicyPublication).order_by(PolicyPublication.seq.desc()).limit(limit)
        ).all()
