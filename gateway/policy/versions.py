"""Storage of the administered lists: reading and loading versions (each one's stored files
checked against their content hash first), the initial import from files, the deny-all set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.errors import NotFound
from gateway.policy.admin_log import SYSTEM_AUTHOR
from gateway.policy.bundle import bundle_from_directory, load_bundle
from gateway.policy.engine import PolicyEngine
from gateway.policy.errors import PolicyError, PolicyProblem
from gateway.policy.store import (
    PolicyRepository,
    PolicyVersion,
    ProposalKind,
    PublicationKind,
    Verdict,
    VersionState,
)
from gateway.standard import Standard

__all__ = [
    "DENY_ALL_FILES",
    "Bootstrap",
    "VersionStore",
    "bootstrap",
    "deny_all_engine",
    "summary",
]

log = structlog.get_logger(__name__)

# The set an emergency freeze puts in force, and a worker whose published set does not load
# starts with: no permission, so every request is denied (default deny).
DENY_ALL_FILES: Mapping[str, str] = {
    "permissions/freeze.yaml": (
        "description: emergency freeze (deny-all); no permission grants anything\npermissions: []\n"
    ),
    "negative_list/freeze.yaml": "negative_list: []\n",
}
_CACHED_ENGINES = 16


def deny_all_engine(standard: Standard) -> PolicyEngine:
    return load_bundle(dict(DENY_ALL_FILES), standard, run_tests=False).engine


def integrity_error(version_id: str) -> PolicyError:
    return PolicyError(
        [
            PolicyProblem(
                f"the stored files of {version_id} do not match their content hash: "
                "the row was changed after it was written",
                code="integrity",
            )
        ]
    )


def checked_files(version: PolicyVersion) -> dict[str, str]:
    """The version's files, refused if they no longer match their content hash."""
    if not version.intact():
        raise integrity_error(version.version_id)
    return version.file_map()


class VersionStore:
    """Versions read from the database, and loaded engines cached by version id."""

    def __init__(self, engine: Engine, standard: Standard) -> None:
        self.engine = engine
        self.standard = standard
        self._engines: dict[str, PolicyEngine] = {}
        self.deny_all = deny_all_engine(standard)

    def session(self) -> Session:
        return Session(self.engine)

    def version_or_404(self, version_id: str) -> PolicyVersion:
        with Session(self.engine) as session:
            version = PolicyRepository(session).version(version_id)
        if version is None:
            raise NotFound(f"no policy version {version_id}")
        return version

    def files(self, version_id: str) -> dict[str, str]:
        if version_id == self.deny_all.version:
            return dict(DENY_ALL_FILES)
        return checked_files(self.version_or_404(version_id))

    def state(self, version_id: str) -> VersionState:
        with Session(self.engine) as session:
            repository = PolicyRepository(session)
            version = repository.version(version_id)
            if version is None:
                raise NotFound(f"no policy version {version_id}")
            return repository.state(version)

    def load(self, version_id: str) -> PolicyEngine:
        """The engine of a stored version (its files checked first); PolicyError if it does
        not load, NotFound if there is no such version."""
        cached = self._engines.get(version_id)
        if cached is not None:
            return cached
        if version_id == self.deny_all.version:
            return self.deny_all
        loaded = load_bundle(self.files(version_id), self.standard, run_tests=False).engine
        if len(self._engines) >= _CACHED_ENGINES:
            self._engines.clear()
        self._engines[version_id] = loaded
        return loaded

    def remember(self, engine: PolicyEngine) -> None:
        self._engines[engine.version] = engine

    def current(self) -> tuple[int, str] | None:
        """(seq, version id) of the latest publication, if any."""
        with Session(self.engine) as session:
            current = PolicyRepository(session).current()
            return None if current is None else (current.seq, current.version_id)

    def listing(self, in_force: str) -> dict[str, Any]:
        with Session(self.engine) as session:
            repository = PolicyRepository(session)
            current = repository.current()
            versions = [summary(repository.state(v)) for v in repository.versions()]
            publications = [
                {
                    "seq": p.seq,
                    "version_id": p.version_id,
                    "kind": p.kind,
                    "published_by": p.published_by,
                    "published_at": p.published_at.isoformat(),
                }
                for p in repository.publications(20)
            ]
        return {
            "current": current.version_id if current else in_force,
            "versions": versions,
            "publications": publications,
        }


def summary(state: VersionState) -> dict[str, Any]:
    version, latest, review = state.version, state.latest, state.review
    return {
        "version_id": version.version_id,
        "status": str(state.status),
        "kind": latest.kind if latest is not None else "freeze",
        "base": latest.base_version_id if latest is not None else None,
        "author": version.author,
        "created_at": version.created_at.isoformat(),
        "comment": version.comment,
        "content_sha256": version.content_sha256,
        "proposed_by": latest.proposed_by if latest is not None else version.author,
        "reviewer": review.reviewer if review else None,
        "reviewed_at": review.reviewed_at.isoformat() if review else None,
        "review_comment": review.comment if review else None,
    }


@dataclass(frozen=True)
class Bootstrap:
    """The set a worker starts with."""

    engine: PolicyEngine
    imported: bool  # the shipped files were just recorded as the initial version
    seq: int  # the publication it reflects (0: none)
    load_error: str | None = None  # the published set did not load: deny-all mode


def bootstrap(
    engine: Engine,
    standard: Standard,
    policy_dir: Path,
    *,
    reviewed_by: str | None = None,
    retry: bool = True,
) -> Bootstrap:
    """The set to start with: the latest publication, else the shipped files, imported.

    The import is a version with an ``initial`` proposal, published at once but not reviewed
    (status ``imported``) unless ``reviewed_by`` names who reviewed the files (``gateway db
    upgrade --policy-files-reviewed``). A latest publication that does not load (damaged, or
    written for a standard this release does not have) gives the deny-all set and the reason:
    the worker starts, denies everything, and the administrators can still publish a set that
    loads.
    """
    with Session(engine) as session:
        repository = PolicyRepository(session)
        current = repository.current()
        if current is not None:
            version = repository.version(current.version_id)
            try:
                if version is None:
                    raise integrity_error(current.version_id)
                files = checked_files(version)
                loaded = load_bundle(files, standard, run_tests=False).engine
            except PolicyError as exc:
                reason = "; ".join(p.message for p in exc.problems[:3])
                log.error(
                    "the published policy set does not load: deny-all mode",
                    version=current.version_id,
                    error=reason,
                )
                return Bootstrap(deny_all_engine(standard), False, current.seq, reason)
            return Bootstrap(loaded, False, current.seq)
    files = bundle_from_directory(policy_dir)
    loaded = load_bundle(files, standard, run_tests=False).engine
    try:
        with Session(engine) as session, session.begin():
            repository = PolicyRepository(session)
            if repository.version(loaded.version) is None:
                repository.add_version(loaded.version, files, SYSTEM_AUTHOR, "shipped policy files")
            proposal = repository.propose(
                loaded.version, ProposalKind.INITIAL, SYSTEM_AUTHOR, "shipped policy files", None
            )
            if reviewed_by is not None:
                repository.add_review(
                    proposal.proposal_id,
                    Verdict.APPROVED,
                    reviewed_by,
                    "the deployment reviewed the shipped policy files",
                )
            seq = repository.publish(
                loaded.version, PublicationKind.INITIAL, SYSTEM_AUTHOR, after=0
            ).seq
    except IntegrityError:
        if not retry:
            raise
        # Another worker recorded them first; follow whatever it published.
        return bootstrap(engine, standard, policy_dir, reviewed_by=reviewed_by, retry=False)
    return Bootstrap(loaded, True, seq)
