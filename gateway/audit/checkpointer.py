"""Signs a checkpoint of the tree every few seconds while the log grows; keeps them all.

Several workers may run a checkpointer against one database: the tree size is the
primary key, so a checkpoint for a size already signed is simply skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.audit.checkpoint import CheckpointSigner
from gateway.audit.merkle import Frontier
from gateway.audit.models import AuditCheckpoint, AuditTreeHead
from gateway.audit.repository import AuditRepository
from gateway.audit.writer import TREE_HEAD_ID
from gateway.background import in_thread
from gateway.db import utcnow

__all__ = ["Checkpointer"]

log = structlog.get_logger(__name__)


class Checkpointer:
    """``key_loader``, when given, is called before every signing: a key file that was
    removed stops signing (and readiness says so), a restored or rotated one is used
    at once, without a restart."""

    def __init__(
        self,
        engine: Engine,
        signer: CheckpointSigner | None,
        origin: str,
        interval_s: float,
        *,
        key_loader: Callable[[], CheckpointSigner] | None = None,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.origin = origin
        self.interval_s = interval_s
        self.key_loader = key_loader
        self.last_error: str | None = None

    def reload_key(self) -> None:
        if self.key_loader is None:
            return
        try:
            self.signer = self.key_loader()
        except (OSError, ValueError) as exc:
            if self.signer is not None:
                log.error("checkpoint signing key unavailable", error=str(exc))
            self.signer = None

    def checkpoint_now(self) -> int | None:
        """Sign the current tree if it grew since the last checkpoint (or none was ever
        signed, the empty tree included); return the size signed."""
        self.reload_key()
        if self.signer is None:
            self.last_error = "no checkpoint signing key"
            return None
        with Session(self.engine) as conn, conn.begin():
            if self.engine.dialect.name == "sqlite":
                # Take SQLite's write lock before reading the head (what BEGIN IMMEDIATE
                # does): a deferred transaction that read a head another connection then
                # moved cannot upgrade to a write and fails with "database is locked"
                # instead of waiting. A no-op write as the first statement waits its turn.
                conn.execute(
                    update(AuditTreeHead)
                    .where(AuditTreeHead.id == TREE_HEAD_ID)
                    .values(size=AuditTreeHead.size)
                )
            repository = AuditRepository(conn)
            size, frontier_bytes = repository.head()
            latest = conn.execute(
                select(AuditCheckpoint.tree_size)
                .order_by(AuditCheckpoint.tree_size.desc())
                .limit(1)
            ).scalar()
            # The empty tree is signed too, once: a running gateway always has a checkpoint.
            if latest is not None and latest >= size:
                return None
            root = Frontier.from_bytes(frontier_bytes).root()
            note = self.signer.sign_checkpoint(self.origin, size, root)
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(AuditCheckpoint).values(
                            tree_size=size, root=root, note=note, created_at=utcnow()
                        )
                    )
            except IntegrityError:
                return None  # another worker signed this size first
        return size

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await in_thread(self.checkpoint_now)
                if self.signer is not None:
                    self.last_error = None
            except SQLAlchemyError as exc:
                self.last_error = f"{exc.__class__.__name__}"
                log.error("checkpoint failed", error=str(exc))
