"""One quick round of the crash loop (tests/reliability/crash_loop.py) on SQLite: the
gateway as a process under load, ``kill -9``, restart, and every check of the full run
(20 rounds per backend: ``python -m tests.reliability.crash_loop --rounds 20``), deliveries
included (pushed to a slow court system while the gateway is killed).

To stay quick it uses the sample systems this test session already runs (in threads)
instead of starting ``serve-all``, and runs ``gateway audit verify`` in this process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import CREDENTIALS
from tests.reliability.crash_loop import Options, print_summary, run


@pytest.mark.slow
def test_one_round_of_kill_9_keeps_the_audit_log_whole(
    tmp_path: Path, sample_systems: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    options = Options(
        rounds=1,
        backend="sqlite",
        concurrency=4,
        max_requests=300,
        max_seconds=0.8,
        seed=7,
        workdir=tmp_path,
        upstream_urls=sample_systems,
        upstream_secret=CREDENTIALS.secret,
        verify_in_process=True,
    )
    (summary,) = run(options)
    print_summary([summary])
    output = capsys.readouterr().out
    assert summary.ok, output
    (result,) = summary.rounds
    assert result.statuses[200] > 0, output  # the kill came under load, after some answers
    assert result.proofs_checked == result.statuses[200]
    assert summary.final.proofs_checked == result.statuses[200]
    # Deliveries sent under the same load were pushed across the kill, each received once.
    assert summary.final.deliveries_checked > 0, output
