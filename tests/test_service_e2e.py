"""``ivr-rating run`` against real peers: catch-up import on start, calls, delivery as they
come, and a clean SIGTERM that lets the call in progress finish and be delivered."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from lab.night_lab import Citizen, NightLab, lab_day
from tests.helpers import wait_until

pytestmark = pytest.mark.peers


def test_service_imports_yesterday_calls_and_stops_cleanly(tmp_path: Path) -> None:
    citizens = [Citizen("+375291000031", "press:2"), Citizen("+375291000032", "silent")]
    day = lab_day()
    lab = NightLab(tmp_path, day, citizens, with_bad_items=False)
    with lab:
        proc = lab.popen("run")
        log = tmp_path / "runner-0.log"
        try:
            first = lab.items[0]["id"]
            wait_until(lambda: first in lab.ratings_by_request(), 90, "the press:2 rating")
            # A window edit takes effect without a restart: SIGHUP re-reads the config.
            proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "configuration reloaded" in log.read_text(), 10, "the reload")
            # The silent citizen's call is still going: stop the service now.
            assert len(lab.portal.ratings) == 1
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        err = log.read_text()
        assert proc.returncode == 0, err[-3000:]
        ratings = lab.ratings_by_request()
        assert ratings[first]["outcome"] == "unsatisfied"
        assert ratings[first]["return_for_rework"] is True
        # The call in progress at SIGTERM was finished and its outcome delivered before exit.
        assert ratings[lab.items[1]["id"]]["outcome"] == "no_input"
        assert "signal SIGTERM: stopping" in err
