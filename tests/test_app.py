"""The app factory: a start refused half-way leaves nothing open behind it."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from adapters.config import AgencyConfigError
from gateway.app import create_app
from gateway.migrate import upgrade
from tests.conftest import make_settings


@pytest.mark.postgres
def test_a_start_refused_after_the_policy_import_closes_its_connections(
    tmp_path: Path, postgres_url: str
) -> None:
    # The policy import has used the database (a pooled connection) when the agency
    # configuration is refused: an identity for an agency the gateway does not know.
    settings = make_settings(tmp_path, postgres_url, upstream_identities={"atlantis": "x"})
    upgrade(settings)
    with pytest.raises(AgencyConfigError, match="atlantis") as refused:
        TestClient(create_app(settings)).__enter__()
    del refused
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []
