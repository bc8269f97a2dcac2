"""The adapter error hierarchy's fixed categories (adapters/base.py): the only words about an
upstream failure that reach a caller or the audit log (the agency's text stays in ``message``)."""

from __future__ import annotations

import pytest

from adapters.base import (
    AdapterError,
    MappingError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

AGENCY_TEXT = "ORA-01403: 公民身份号码 11010519491231002X 无数据"


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (UpstreamUnavailable("court", AGENCY_TEXT), "upstream_unavailable"),
        (UpstreamTimeout("court", AGENCY_TEXT), "upstream_timeout"),
        (UpstreamProtocolError("court", AGENCY_TEXT), "upstream_invalid"),
        (MappingError("court", AGENCY_TEXT, field_name="sex"), "upstream_invalid"),
        (AdapterError("court", AGENCY_TEXT), "upstream_error"),
        # An error answer with an HTTP status is classed by the status.
        (UpstreamProtocolError("court", AGENCY_TEXT, upstream_status=404), "upstream_4xx"),
        (UpstreamProtocolError("court", AGENCY_TEXT, upstream_status=499), "upstream_4xx"),
        (UpstreamProtocolError("court", AGENCY_TEXT, upstream_status=500), "upstream_5xx"),
        (UpstreamUnavailable("court", AGENCY_TEXT, upstream_status=503), "upstream_5xx"),
        (UpstreamProtocolError("court", AGENCY_TEXT, upstream_status=302), "upstream_invalid"),
        # A category given by the adapter wins over the status and the class.
        (
            UpstreamProtocolError(
                "court", AGENCY_TEXT, upstream_status=200, category="upstream_refused"
            ),
            "upstream_refused",
        ),
        (
            UpstreamUnavailable("court", AGENCY_TEXT, category="upstream_circuit_open"),
            "upstream_circuit_open",
        ),
    ],
)
def test_every_error_has_a_fixed_category(error: AdapterError, category: str) -> None:
    assert error.category == category
    assert AGENCY_TEXT not in error.category
    # The agency's text is kept for the operator's log only.
    assert error.message == AGENCY_TEXT
    assert error.agency == "court"
