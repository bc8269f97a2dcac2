"""``gateway db upgrade --policy-files-reviewed``: the deployment says it reviewed the files.

Without it the shipped files are imported at the first start, in force but not reviewed
(status ``imported``) until a second administrator approves them. With it the deployment
records, audited, that it reviewed exactly the shipped files: they are imported (or the
unreviewed import of the very same files is marked) as reviewed by ``deployment:db-upgrade``.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.audit.writer import AuditWriter
from gateway.db import create_db_engine
from gateway.policy.admin_log import Actor, AdminLog
from gateway.policy.bundle import bundle_from_directory, load_bundle
from gateway.policy.store import PolicyRepository, ProposalKind, Verdict
from gateway.policy.versions import bootstrap
from gateway.settings import Settings
from gateway.standard import load_standard

__all__ = ["DEPLOYMENT_REVIEWER", "import_reviewed_policy_files"]

DEPLOYMENT_REVIEWER = "deployment:db-upgrade"
_COMMENT = "the deployment reviewed the shipped policy files (gateway db upgrade)"


def import_reviewed_policy_files(settings: Settings) -> str:
    """Record the review; a line saying what was done."""
    standard = load_standard(settings.policy_dir / "standard")
    shipped = load_bundle(bundle_from_directory(settings.policy_dir), standard, run_tests=True)
    if shipped.suite is not None and not shipped.suite.ok:
        return f"not recorded: the shipped policy tests fail ({shipped.suite.failed} failed)"
    version_id = shipped.engine.version
    engine = create_db_engine(settings.resolved_database_url)
    writer = AuditWriter(settings.resolved_database_url)
    writer.start()
    log = AdminLog(writer, lambda: version_id)
    actor = Actor(DEPLOYMENT_REVIEWER, "-")
    try:
        with Session(engine) as session:
            repository = PolicyRepository(session)
            current = repository.current()
            state = None
            if current is not None:
                version = repository.version(current.version_id)
                state = repository.state(version) if version is not None else None
        if current is None:
            log.record_blocking(actor, "initial", {"version_id": version_id, "reviewed": True})
            bootstrap(engine, standard, settings.policy_dir, reviewed_by=DEPLOYMENT_REVIEWER)
            return f"imported the shipped policy files as {version_id}, reviewed by the deployment"
        if (
            state is not None
            and state.open is not None
            and state.open.kind == ProposalKind.INITIAL
            and current.version_id == version_id
        ):
            log.record_blocking(
                actor,
                "approve",
                {"version_id": version_id, "kind": str(ProposalKind.INITIAL), "comment": _COMMENT},
            )
            with Session(engine) as session, session.begin():
                PolicyRepository(session).add_review(
                    state.open.proposal_id, Verdict.APPROVED, DEPLOYMENT_REVIEWER, _COMMENT
                )
            return f"recorded that the deployment reviewed the initial import {version_id}"
        status = state.status if state is not None else "unknown"
        return (
            f"nothing recorded: {current.version_id} is in force ({status}); policy changes "
            "are reviewed through the admin API"
        )
    finally:
        writer.stop()
        engine.dispose()
