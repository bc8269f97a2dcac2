"""The soak's load: paced so that it sends the rate asked for, whatever the response time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.e2e.soak import CONNECTIONS, pacing_for


@given(
    rate=st.floats(min_value=1, max_value=50_000),
    latency_ms=st.floats(min_value=0, max_value=2_000),
)
def test_the_connections_together_send_the_rate(rate: float, latency_ms: float) -> None:
    connections, delay_ms = pacing_for(rate, latency_ms)
    assert connections >= CONNECTIONS
    assert delay_ms >= 0
    # each connection: one request per response time + delay
    assert connections * 1000 / (latency_ms + delay_ms) == pytest.approx(rate)


def test_a_slow_phase_still_leaves_a_delay() -> None:
    # The run that soaked at its maximum: 70 % of 1,069 req/s, 66.6 ms responses at 80 %.
    connections, delay_ms = pacing_for(748.0, 66.6)
    assert connections > CONNECTIONS
    assert delay_ms >= 66.6
