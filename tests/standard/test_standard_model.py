"""The standard's lookups: built once, refused on duplicates, never stale after a copy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.standard import Standard


def test_lookups_follow_a_copy_with_changed_contents(standard: Standard) -> None:
    standard.agency(standard.agencies[0].code)  # the original's lookups are built and cached
    dropped = standard.agencies[0]
    copy = standard.model_copy(update={"agencies": standard.agencies[1:]})
    with pytest.raises(KeyError):
        copy.agency(dropped.code)
    assert standard.agency(dropped.code) is dropped
    person = standard.resource("person")
    assert person.has_field("name")
    assert "name" in person.field_names
    kept = tuple(f for f in person.fields if f.name != "name")
    fewer = person.model_copy(update={"fields": kept})
    assert not fewer.has_field("name")
    assert "name" not in fewer.field_names
    assert person.has_field("name")


def test_a_copy_with_duplicates_is_refused_at_once(standard: Standard) -> None:
    with pytest.raises(ValueError, match="duplicate purpose"):
        standard.model_copy(update={"purposes": standard.purposes + standard.purposes[:1]})


def test_duplicates_are_refused_when_built(standard: Standard) -> None:
    data = standard.model_dump()
    data["purposes"] = [*data["purposes"], data["purposes"][0]]
    with pytest.raises(ValidationError, match="duplicate purpose"):
        Standard.model_validate(data)


def test_cached_lookups_are_no_part_of_the_model(standard: Standard) -> None:
    standard.resource("person").references  # noqa: B018 - cached on first use
    again = Standard.model_validate(standard.model_dump())
    assert again == standard
    assert again.model_dump() == standard.model_dump()
    assert "_index" not in standard.model_dump()
