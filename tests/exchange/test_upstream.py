"""AgencyAdapters (gateway/exchange/upstream.py): subject lookups for the policy decision, and
what an agency's search can filter on (data calls need a clearance: test_choke_point.py)."""

from __future__ import annotations

import pytest

from gateway.exchange.upstream import AgencyAdapters
from tests.exchange.test_subjects import FakeAgency, _person


class FilteringAgency(FakeAgency):
    """The fake public security system, whose person search takes ``case_id`` and ``id_number``."""

    def search_filters(self, resource: str) -> frozenset[str]:
        return frozenset({"case_id", "id_number"}) if resource == "person" else frozenset()


def test_can_filter_asks_the_owners_adapter() -> None:
    adapters = AgencyAdapters({"public_security": FilteringAgency()}, case_owner="public_security")
    assert adapters.can_filter("public_security", "person", "case_id")
    assert adapters.can_filter("public_security", "person", "id_number")
    assert not adapters.can_filter("public_security", "person", "name")
    assert not adapters.can_filter("public_security", "case", "case_id")
    assert not adapters.can_filter("court", "judgment", "case_id")  # no such adapter here
    plain = AgencyAdapters({"public_security": FakeAgency()}, case_owner="public_security")
    assert not plain.can_filter("public_security", "person", "case_id")  # the default: none


async def test_subject_lookups_reach_the_owner_without_a_clearance() -> None:
    agency = FakeAgency(_person("P1", "C1"), _person("P2", "C1"), _person("P3", "C2"))
    adapters = AgencyAdapters({"public_security": agency}, case_owner="public_security")
    found = await adapters.fetch_subject("public_security", "person", "P1")
    assert found == _person("P1", "C1")
    assert await adapters.fetch_subject("public_security", "person", "P404") is None
    page = await adapters.search_subjects(
        "public_security", "person", {"case_id": "C1"}, limit=1, after=None
    )
    assert [r["person_id"] for r in page.records] == ["P1"]
    assert page.next_after == "P1"
    assert agency.searches == [("person", {"case_id": "C1"}, None)]
    with pytest.raises(KeyError):
        await adapters.fetch_subject("court", "judgment", "J1")
