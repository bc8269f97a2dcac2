"""Per-case limits hold under concurrency (gateway/deliveries/limits.py).

Two transactions store the third 退回补充侦查 of one case at once: the first holds the lock of
that kind in that case until it commits, the second counts after it and is refused. Before the
lock, both counted one made and both were stored (补充侦查以二次为限 broken).
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import session_scope
from gateway.deliveries.limits import enforce_per_case_limit
from gateway.deliveries.repository import DeliveryRepository
from gateway.errors import Conflict
from gateway.policy.decision import CaseContext
from gateway.standard import Standard
from tests.deliveries.push_helpers import new_delivery, store_delivery

NUMBER = "A6401040000002024116717"
CASE = CaseContext(
    case_id="C00000016",
    police_case_number=NUMBER,
    court_case_number=None,
    handling_agencies=frozenset({"GA640104", "JC640104"}),
)
KIND = "supplementary_investigation"


def _store_one(factory: sessionmaker[Session], i: int) -> str:
    return store_delivery(
        factory, KIND, "procuratorate", "public_security", {"n": i}, case_number=NUMBER
    )


def test_two_concurrent_requests_at_the_limit_store_one(
    delivery_db: sessionmaker[Session], standard: Standard
) -> None:
    kind = standard.delivery_kind(KIND)
    _store_one(delivery_db, 1)  # one made: room for exactly one more
    first_counted = threading.Event()
    outcomes: dict[str, str] = {}

    def first() -> None:  # stores its row in the locked transaction, as DeliveryService does
        with session_scope(delivery_db) as session:
            enforce_per_case_limit(session, kind, NUMBER, CASE)
            first_counted.set()
            time.sleep(0.5)  # the second arrives while this one is not committed
            new = new_delivery(KIND, "procuratorate", "public_security", {"n": 2},
                               case_number=NUMBER)  # fmt: skip
            DeliveryRepository(session).create(
                new, key=new.id, request_sha256="0" * 64, audit_index=0
            )
        outcomes["first"] = "stored"

    def second() -> None:
        assert first_counted.wait(10)
        try:
            with session_scope(delivery_db) as session:
                enforce_per_case_limit(session, kind, NUMBER, CASE)
            outcomes["second"] = "passed"
        except Conflict as exc:
            outcomes["second"] = f"409 made={exc.extra['made']}"

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == {"first": "stored", "second": "409 made=2"}


@pytest.mark.parametrize("made", [0, 1])
def test_under_the_limit_passes_and_at_it_is_a_409(
    delivery_db: sessionmaker[Session], standard: Standard, made: int
) -> None:
    kind = standard.delivery_kind(KIND)
    for i in range(made):
        _store_one(delivery_db, i)
    with session_scope(delivery_db) as session:
        enforce_per_case_limit(session, kind, NUMBER, CASE)
    for i in range(made, 2):
        _store_one(delivery_db, i)
    with pytest.raises(Conflict) as refused, session_scope(delivery_db) as session:
        enforce_per_case_limit(session, kind, NUMBER, CASE)
    assert (refused.value.extra["limit"], refused.value.extra["made"]) == (2, 2)
