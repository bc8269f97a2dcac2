"""Property test: a conditional-sharing grant never widens beyond its scope.

Over real requests to the sample systems, hypothesis draws a request as the information-flow
suite does (tests/infoflow) and a live grant: mostly the request's own agency, resource,
purpose and case, sometimes another of each; random fields (有条件, 无条件 and 不予共享 alike);
for the whole case, the fetched record, or another record. Every response must be what the
independent oracle (tests/infoflow/oracle.py, which restates grants from the issue) releases
with that grant: its fields only, on its case only, for its records only, for its purpose
only; the negative list still wins; and the response names the grant exactly when it
released a field.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from gateway.db import session_scope
from gateway.policy.decision import Grant
from gateway.sharing.models import SharingApplication, SharingGrant
from tests.conftest import Gateway
from tests.infoflow.checks import check_fetch, check_search
from tests.infoflow.conftest import flow_gateway, infoflow_examples, oracle
from tests.infoflow.oracle import Ask, Oracle
from tests.infoflow.oracle import SharingGrant as OracleGrant
from tests.infoflow.strategies import AGENCIES, N_CASES, asks, fetch_asks, search_asks

__all__ = ["flow_gateway", "infoflow_examples", "oracle"]

_IDS = itertools.count(1)


@st.composite
def sharing_grants(draw: st.DrawFn, oracle: Oracle, ask: Ask, other: int) -> OracleGrant:
    def mostly(own: str, elsewhere: list[str]) -> str:
        return draw(st.one_of(st.just(own), st.just(own), st.just(own), st.sampled_from(elsewhere)))

    agency = mostly(ask.agency, sorted(AGENCIES))
    resource = mostly(ask.resource, sorted(oracle.fields))
    purpose = mostly(ask.purpose, sorted(oracle.needs_case))
    own_case = ask.case_index if ask.case_index is not None else other
    case_index = draw(
        st.one_of(st.just(own_case), st.just(own_case), st.just(other), st.integers(0, N_CASES - 1))
    )
    fields = draw(st.sets(st.sampled_from(oracle.fields[resource]), min_size=1).map(frozenset))
    id_field = oracle.id_field(resource)
    own_records = sorted(
        str(r[id_field]) for r in oracle.dataset.case(case_index).records(resource)
    )
    choices: list[st.SearchStrategy[frozenset[str] | None]] = [st.none(), st.none()]
    if own_records:
        choices.append(st.sets(st.sampled_from(own_records), min_size=1, max_size=3).map(frozenset))
    record_ids = draw(st.one_of(*choices))
    return OracleGrant(
        f"00000000-0000-4000-8000-{next(_IDS):012d}",
        agency, resource, purpose, case_index, fields, record_ids,
    )  # fmt: skip


class Installed:
    """A grant made live on the gateway as an approval makes it (row and registry)."""

    def __init__(self, gw: Gateway, oracle: Oracle, given: OracleGrant) -> None:
        runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
        self.runtime, self.id = runtime, given.id
        now = datetime.now(UTC)
        case = oracle.case(given.case_index)
        record_ids = None if given.record_ids is None else json.dumps(sorted(given.record_ids))
        number = str(case.get("court_case_number") or case["police_case_number"])
        with session_scope(runtime.session_factory) as session:
            session.add(
                SharingApplication(
                    id=given.id, created_at=now, requester_agency=given.agency,
                    client_id="property", operator_id="property", owner_agency="FY640104",
                    resource=given.resource, fields=json.dumps(sorted(given.fields)),
                    record_ids=record_ids, purpose=given.purpose, case_number=number,
                    case_id=str(case["case_id"]), reason="property test", days=1,
                    status="approved", due_at=now, grant_id=given.id,
                )
            )  # fmt: skip
            session.flush()
            session.add(
                SharingGrant(
                    id=given.id, application_id=given.id, requester_agency=given.agency,
                    owner_agency="FY640104", resource=given.resource,
                    fields=json.dumps(sorted(given.fields)), record_ids=record_ids,
                    purpose=given.purpose, case_id=str(case["case_id"]), case_number=number,
                    valid_from=now - timedelta(minutes=1), valid_until=now + timedelta(days=1),
                    expiry_recorded=False,
                )
            )  # fmt: skip
        runtime.sharing.grants.add(
            Grant(
                given.id, given.agency, given.resource, given.fields, given.purpose,
                str(case["case_id"]), given.record_ids,
                now - timedelta(minutes=1), now + timedelta(days=1),
            )
        )  # fmt: skip

    def revoke(self) -> None:
        self.runtime.sharing.grants.revoke(self.id)
        with session_scope(self.runtime.session_factory) as session:
            session.execute(
                update(SharingGrant)
                .where(SharingGrant.id == self.id)
                .values(revoked_at=datetime.now(UTC), revoked_by="property")
            )


@pytest.fixture
def grants(flow_gateway: Gateway, oracle: Oracle) -> Iterator[list[Installed]]:
    installed: list[Installed] = []
    yield installed
    for grant in installed:
        grant.revoke()


@pytest.mark.slow
def test_a_grant_never_widens_beyond_its_scope(
    flow_gateway: Gateway, oracle: Oracle, infoflow_examples: int
) -> None:
    used: list[str] = []

    @settings(
        max_examples=max(infoflow_examples // 2, 50),
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        ask, _, other = data.draw(asks(oracle))
        fetch = data.draw(st.booleans(), label="fetch")
        if fetch:
            ask = data.draw(fetch_asks(oracle, ask, other))
        else:
            ask = data.draw(search_asks(oracle, ask, other))
        given_grant = data.draw(sharing_grants(oracle, ask, other))
        if oracle.request(ask, (given_grant,)).sharing_ids:
            used.append(given_grant.id)
        installed = Installed(flow_gateway, oracle, given_grant)
        try:
            if fetch:
                check_fetch(flow_gateway, oracle, ask, (given_grant,))
            else:
                check_search(
                    flow_gateway, oracle, ask, data.draw(st.integers(1, 4)), (given_grant,)
                )
        finally:
            installed.revoke()
        # Revoked: the same request is answered as without any grant.
        if fetch:
            check_fetch(flow_gateway, oracle, ask)
        else:
            check_search(flow_gateway, oracle, ask, 4)

    run()
    # Not vacuous: many of the drawn grants released a field.
    assert len(used) >= 10, len(used)
