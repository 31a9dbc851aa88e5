"""A short load run in CI: 30 of the product's survey calls at once for 20 s against a real
SIPp that answers and echoes our RTP. No call may drop and every survey gets its outcome.
Timing figures belong to ``bench/capacity.py``, not to this test."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ivr.sip.api import EndedBy
from lab.load import run_load

pytestmark = pytest.mark.peers


def test_thirty_calls_for_twenty_seconds_none_dropped_every_outcome(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    result = run_load(tmp_path, calls=30, hold_s=20.0)
    assert result.errors == []
    assert len(result.reports) == 30
    assert [r.call_id for r in result.dropped] == []
    assert all(r.final_status == 200 and r.ended_by is EndedBy.LOCAL_HANGUP for r in result.reports)
    assert sorted(result.outcomes) == sorted(f"s{i}" for i in range(30))
    assert {(o.outcome.value, o.reason) for o in result.outcomes.values()} == {
        ("no_input", "max_call_length")
    }
    assert result.window_s >= 19  # the calls were all up together for the whole hold
    assert {t.name for t in threading.enumerate()} <= before
