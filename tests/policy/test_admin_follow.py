"""Several workers on one database follow the publications; a swap is atomic for a request.

Two apps (two TestClients) on the same database stand for two gateway workers. The
follower task polls every few seconds; the tests call ``refresh()`` directly instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.policy.admin import PolicyHolder
from gateway.policy.bundle import load_bundle
from gateway.policy.decision import Outcome
from gateway.policy.engine import PolicyEngine
from gateway.policy.store import PolicyRepository, PolicyVersion
from gateway.standard import Standard
from tests.conftest import Gateway
from tests.policy.conftest import request
from tests.policy.test_admin_api import (
    CASE_FILE_RULE,
    SHIPPED_FILES,
    court_reads_case,
    entry,
    in_force,
    publish,
    review,
    rollback,
    runtime_of,
    submitted,
    without_case_file,
)


@contextmanager
def second_worker(first: Gateway) -> Iterator[Gateway]:
    """Another app on the same database, keys and clients: a second worker."""
    with TestClient(create_app(first.settings)) as client:
        yield Gateway(settings=first.settings, client=client, clients=first.clients)


@pytest.fixture
def workers(
    exchange_gateway: Callable[..., Gateway], database_url: str
) -> Iterator[tuple[Gateway, Gateway]]:
    a = exchange_gateway(database_url)
    a.register("approver", "ZF640000", ["policy:admin"])
    # the import of the shipped files, reviewed: it may be restored by a rollback
    assert review(a, in_force(a), "approve").status_code == 200
    with second_worker(a) as b:
        yield a, b


def test_a_publication_on_one_worker_reaches_the_other(
    workers: tuple[Gateway, Gateway], shipped_engine: PolicyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = workers
    shipped = shipped_engine.version
    assert runtime_of(b).policy_imported is False  # worker A imported the files
    assert in_force(a) == in_force(b) == shipped
    assert court_reads_case(b).status_code == 200

    version_id = submitted(a, without_case_file())
    assert review(a, version_id, "approve").status_code == 200
    assert in_force(a) == version_id
    assert court_reads_case(a).status_code == 403

    before = in_force(b)
    swapped = runtime_of(b).policy_admin.refresh()
    # B's follower task may swap at any moment, before or after ``before`` was read: a refresh
    # after the swap finds nothing to do, and one that found the new set already in force
    # never reports a swap.
    assert not (swapped and before == version_id)
    assert in_force(b) == version_id
    response = court_reads_case(b)
    assert response.status_code == 403, response.text
    assert entry(b, response.headers["X-Audit-Index"])["policy_version"] == version_id
    assert runtime_of(b).policy_admin.refresh() is False  # nothing newer

    # and back: a rollback proposed on B and approved on B reaches A
    assert rollback(b, shipped).status_code == 201
    assert review(b, shipped, "approve").status_code == 200
    runtime_of(a).policy_admin.refresh()
    assert in_force(a) == in_force(b) == shipped
    response = court_reads_case(a)
    assert response.status_code == 200, response.text
    assert entry(a, response.headers["X-Audit-Index"])["policy_version"] == shipped

    # a candidate submitted on one worker is approved on the other (maker-checker holds)
    candidate = submitted(a, without_case_file())
    assert review(b, candidate, "approve", who="admin").status_code == 403
    assert review(b, candidate, "approve").status_code == 200
    assert review(a, candidate, "approve").status_code == 409
    runtime_of(a).policy_admin.refresh()
    assert in_force(a) == in_force(b) == candidate

    # two reviewers racing on two workers, both past the "is it a candidate?" check before
    # either writes: exactly one wins, and there is one publication
    racing = submitted(a, without_case_file())
    runtime_of(b).policy_admin.engine_for(racing)  # loaded: each review reads it once
    with Session(runtime_of(a).engine) as session:
        publications = len(PolicyRepository(session).publications(10_000))
    barrier = threading.Barrier(2, timeout=10)
    read = PolicyRepository.version

    def in_step(self: PolicyRepository, version_id: str) -> PolicyVersion | None:
        if version_id == racing:
            barrier.wait()
        return read(self, version_id)

    with monkeypatch.context() as patch, ThreadPoolExecutor(2) as pool:
        patch.setattr(PolicyRepository, "version", in_step)
        statuses = sorted(pool.map(lambda w: review(w, racing, "approve").status_code, (a, b)))
    assert statuses == [200, 409]
    with Session(runtime_of(a).engine) as session:
        assert len(PolicyRepository(session).publications(10_000)) == publications + 1


def test_a_stale_read_of_the_publications_never_moves_back(
    workers: tuple[Gateway, Gateway], shipped_engine: PolicyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower that read the publications just before a local approval committed
    must not put the older set back in force."""
    a, _ = workers
    admin = runtime_of(a).policy_admin
    with Session(runtime_of(a).engine) as session:
        latest = PolicyRepository(session).current()
        assert latest is not None
        assert latest.version_id == shipped_engine.version
        stale = SimpleNamespace(seq=latest.seq, version_id=latest.version_id)
    published = publish(a, without_case_file())
    with monkeypatch.context() as patch:  # the read the follower made before the approval
        patch.setattr(PolicyRepository, "current", lambda self: stale)
        assert admin.refresh() is False
        assert in_force(a) == published
    assert admin.refresh() is False
    assert in_force(a) == published


def _engines(standard: Standard) -> tuple[PolicyEngine, PolicyEngine]:
    old = load_bundle(SHIPPED_FILES, standard, run_tests=False).engine
    new = load_bundle(without_case_file(), standard, run_tests=False).engine
    assert old.version != new.version
    return old, new


def test_a_request_racing_the_swap_sees_one_whole_version(standard: Standard) -> None:
    old, new = _engines(standard)
    expected = {old.version: Outcome.ALLOW, new.version: Outcome.DENY}
    holder = PolicyHolder(old)
    access = request("FY640104", "case", "TRIAL", fields={"case_id", "case_name"})
    record = {
        "case_id": "C1",
        "case_name": "某案",
        "stage": "TRIAL",
        "secrecy_mark": "NONE",
        "handling_agencies": ["FY640104"],
        "closed_trial": False,
        "work_secret": False,
        "has_sealed_juvenile": False,
    }
    stop = threading.Event()
    problems: list[str] = []
    seen: set[str] = set()

    def hammer() -> int:
        count = 0
        while not stop.is_set():
            pdp = holder.current  # what the exchange does: read the holder once per request
            decision = pdp.decide(access)
            verdict = pdp.filter_record(decision, access, record)
            seen.add(decision.policy_version)
            if decision.policy_version != pdp.version:
                problems.append(f"{decision.policy_version} decided by {pdp.version}")
            if decision.outcome is not expected[pdp.version]:
                problems.append(f"{pdp.version}: {decision.outcome} ({decision.rule_ids})")
            if verdict.released != (decision.outcome is Outcome.ALLOW):
                problems.append(f"{pdp.version}: record {verdict.released} for {decision.outcome}")
            count += 1
        return count

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer) for _ in range(4)]
        deadline, i = time.monotonic() + 0.5, 0
        while time.monotonic() < deadline:
            holder.current = new if i % 2 == 0 else old
            i += 1
            time.sleep(0.0002)
        stop.set()
        decided = sum(f.result() for f in futures)
    assert not problems, problems[:5]
    assert decided > 0
    assert seen == {old.version, new.version}


def test_exchange_requests_racing_publications_see_one_version(
    exchange_gateway: Callable[..., Gateway], standard: Standard
) -> None:
    """Through the gateway: each answer and its audit entry come from one version."""
    gw = exchange_gateway()
    old, new = _engines(standard)
    holder = runtime_of(gw).policy
    assert holder.current.version == old.version
    stop = threading.Event()

    def swap() -> None:
        i = 0
        while not stop.is_set():
            holder.current = new if i % 2 == 0 else old
            i += 1
            stop.wait(0.001)

    gw.auth("court")  # the token, before the threads
    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda _: court_reads_case(gw), range(60)))
    finally:
        stop.set()
        swapper.join()
    holder.current = old
    versions = set()
    for response in responses:
        document = entry(gw, response.headers["X-Audit-Index"])
        versions.add(document["policy_version"])
        if document["policy_version"] == old.version:
            assert response.status_code == 200, response.text
            assert document["decision"] == "allow"
            assert CASE_FILE_RULE in document["rule_ids"]
        else:
            assert document["policy_version"] == new.version
            assert response.status_code == 403, response.text
            assert document["decision"] == "deny"
    assert versions == {old.version, new.version}  # both were in force meanwhile
