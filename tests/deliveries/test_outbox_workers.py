"""Several pushers on one database never push one delivery at once (the outbox lease).

Two workers, each with its own event loop in its own thread, drain one outbox together, as two
gateway processes would. On PostgreSQL the claim takes the rows ``FOR UPDATE SKIP LOCKED``.
SQLite deployments run one gateway process (docs/deliveries.md): two writers there fail with
"database is locked" when both upgrade a read to a write, so this runs on PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from gateway.deliveries.outbox import OutboxPusher, PushJob, PushOutcome, PushResult
from tests.deliveries.test_outbox import Audit, _delivery, _state

DELIVERIES = 12


def test_two_workers_push_each_delivery_once(pg_delivery_db: sessionmaker[Session]) -> None:
    delivery_db = pg_delivery_db
    ids = [_delivery(delivery_db) for _ in range(DELIVERIES)]
    pushed: Counter[str] = Counter()
    by_worker: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(2)
    audit = Audit()

    def worker(number: int) -> None:
        async def push(job: PushJob) -> PushResult:
            with lock:
                pushed[job.delivery_id] += 1
                by_worker[number] += 1
            await asyncio.sleep(0.02)  # the recipient takes its time: the other worker claims
            return PushResult(PushOutcome.DELIVERED, 201)

        pusher = OutboxPusher(delivery_db, push, audit.append, lease=timedelta(seconds=60), batch=2)

        async def drain() -> None:
            idle = 0
            while idle < 3:
                idle = idle + 1 if await pusher.run_once() == 0 else 0

        start.wait()
        asyncio.run(drain())

    threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert pushed == Counter(dict.fromkeys(ids, 1))
    assert sum(by_worker.values()) == DELIVERIES
    assert len(by_worker) == 2  # both workers took part
    assert {_state(delivery_db, i)[0] for i in ids} == {"delivered"}
