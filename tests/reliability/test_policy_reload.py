"""A policy reload that fails leaves the running set in force, on every worker.

(1) An invalid candidate submitted through the admin API is refused; the set in force
keeps serving. (2) A publication whose files do not load on a worker (damaged in the
database, or written by a release whose standard this worker does not have) is not
adopted by that worker's follower: it keeps serving its set and adopts the next
publication that loads. (3) A worker that *starts* on such a publication starts anyway,
denying everything (deny-all mode, which /readyz reports), so that the administrators can
still put a set that loads in force, with two people, through its admin API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.db import create_db_engine
from gateway.policy.errors import PolicyError
from gateway.policy.store import PolicyRepository, PublicationKind
from tests.conftest import Gateway
from tests.policy.test_admin_api import COURT, SHIPPED_FILES, review, submit, without_case_file
from tests.reliability.conftest import FaultGateway, mint_tokens

BROKEN_VERSION = "sha256:" + "e" * 64


def _in_force(gw: FaultGateway) -> str:
    return gw.runtime.policy.current.version


def test_an_invalid_candidate_is_refused_and_the_running_set_keeps_serving(
    fault_gateway: Callable[..., FaultGateway],
) -> None:
    gw = fault_gateway()
    running = _in_force(gw)
    for broken in ("permissions: [\n  - id: x\n", SHIPPED_FILES[COURT] + "  - id: [\n"):
        response = submit(gw.gateway, {**SHIPPED_FILES, COURT: broken})
        assert response.status_code == 422, response.text
        assert _in_force(gw) == running
        served = gw.read_case()
        assert served.status_code == 200, served.text
        assert served.json()["policy_version"] == running
        assert gw.entry(served.headers["X-Audit-Index"])["policy_version"] == running
    gw.assert_log_whole()


@contextlib.contextmanager
def _second_worker(first: FaultGateway) -> Iterator[FaultGateway]:
    settings = first.gateway.settings
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        gateway = Gateway(settings=settings, client=client, clients=first.gateway.clients)
        mint_tokens(gateway)
        yield FaultGateway(gateway, first.database_url)


def _publish_unloadable(gw: FaultGateway) -> None:
    """A published version whose files do not load here (as if written by a release with
    another standard): its content hash is right, its rules are not."""
    files = {**SHIPPED_FILES, COURT: "permissions: [\n  - this is not a policy\n"}
    engine = create_db_engine(gw.database_url)
    try:
        with Session(engine) as session, session.begin():
            repository = PolicyRepository(session)
            repository.add_version(BROKEN_VERSION, files, "someone-else", "does not load here")
            current = repository.current()
            assert current is not None
            repository.publish(
                BROKEN_VERSION, PublicationKind.APPROVAL, "someone-else", after=current.seq
            )
    finally:
        engine.dispose()


def test_a_publication_that_does_not_load_leaves_the_worker_on_its_set(
    fault_gateway: Callable[..., FaultGateway],
) -> None:
    a = fault_gateway()
    with _second_worker(a) as b:
        running = _in_force(b)
        _publish_unloadable(a)

        with pytest.raises(PolicyError):  # the follower task logs it and tries again later
            b.runtime.policy_admin.refresh()
        assert _in_force(b) == running
        served = b.read_case()
        assert served.status_code == 200, served.text
        assert b.entry(served.headers["X-Audit-Index"])["policy_version"] == running

        # The next publication that loads is adopted as usual (here: no case-file rule).
        submitted = submit(a.gateway, without_case_file())
        assert submitted.status_code == 201, submitted.text
        version_id = submitted.json()["version_id"]
        assert review(a.gateway, version_id, "approve").status_code == 200
        assert b.runtime.policy_admin.refresh() is True
        assert _in_force(b) == version_id
        refused = b.read_case()
        assert refused.status_code == 403, refused.text
        assert b.entry(refused.headers["X-Audit-Index"])["policy_version"] == version_id
    a.assert_log_whole()


def test_a_worker_whose_published_set_does_not_load_starts_denying_everything(
    fault_gateway: Callable[..., FaultGateway], database_url: str
) -> None:
    a = fault_gateway(database_url)
    shipped = _in_force(a)
    approved = review(a.gateway, shipped, "approve")  # the import reviewed: restorable
    assert approved.status_code == 200, approved.text
    _publish_unloadable(a)
    with _second_worker(a) as b:  # starts on the publication that does not load
        assert b.runtime.policy_admin.follower.deny_all_mode
        ready = b.client.get("/readyz")
        assert ready.status_code == 503
        policy = ready.json()["checks"]["policy"]
        assert (policy["ok"], policy["mode"]) == (False, "deny-all")
        assert "does not load" in policy["error"]
        denied = b.read_case()
        assert denied.status_code == 403, denied.text
        assert b.entry(denied.headers["X-Audit-Index"])["decision"] == "deny"
        # its admin API works: two administrators put the reviewed set back in force
        proposed = b.client.post(
            "/v1/admin/policies/rollback",
            json={"version_id": shipped, "comment": "back to a set that loads"},
            headers=b.gateway.auth("admin"),
        )
        assert proposed.status_code == 201, proposed.text
        assert proposed.json()["base"] == BROKEN_VERSION
        assert review(b.gateway, shipped, "approve").status_code == 200
        assert not b.runtime.policy_admin.follower.deny_all_mode
        assert _in_force(b) == shipped
        assert b.client.get("/readyz").json()["checks"]["policy"]["mode"] == "enforcing"
        served = b.read_case()
        assert served.status_code == 200, served.text
    a.assert_log_whole()
