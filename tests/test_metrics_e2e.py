"""``/metrics``, ``/healthz`` and ``/readyz`` of a real ``ivr-rating night`` process in the lab
(Kamailio, three SIPp citizens, the portal emulator), scraped over HTTP and parsed with
Prometheus' own text parser: the counters match the night's outcomes. The same night logs JSON
lines and writes its heartbeat, which ``ivr-rating status`` shows while it runs.

The portal refuses every rating (503) once the import is done, so the night stays in its
delivery phase with every call finished; the test scrapes then, lets the portal recover and
checks the night's own summary against what was scraped."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivr.core.clock import SYSTEM_CLOCK
from lab.night_lab import Citizen, NightLab, lab_day
from storage.db import make_engine
from storage.heartbeat import list_nodes
from tests.helpers import free_tcp_port, http_get as get, wait_until

pytestmark = pytest.mark.peers

CITIZENS = [
    Citizen("+375291000041", "press:1"),
    Citizen("+375291000042", "press:2"),
    Citizen("+375291000043", "decline"),
]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scraped: dict[Any, float], name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), float("nan"))


def test_metrics_of_a_running_night_match_its_outcomes(tmp_path: Path) -> None:
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    overrides = {
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "logging": {"format": "json"},
        "node": {"name": "lab-night"},
        "portal": {"page_size": 100},  # one page: the request count below is exact
    }
    with NightLab(tmp_path, lab_day(), CITIZENS, with_bad_items=True, overrides=overrides) as lab:
        # One page of 8 items (3 citizens, 5 bad rows), then the ratings of the 3 not-called
        # rows; every request after those 4 is refused until the portal recovers.
        lab.portal.fail_next(100_000, 503, retry_after=0.5, after=4)
        proc = lab.popen("night", "--date", lab.day.isoformat(), "--delivery-deadline", "300")
        log_path = tmp_path / "runner-0.log"
        try:
            wait_until(lambda: _answers(base + "/healthz"), 60, "/healthz", process=proc)
            assert get(base + "/healthz") == (200, "ok\n")
            assert get(base + "/nothing")[0] == 404

            def night_done() -> bool:
                scraped = samples(get(base + "/metrics")[1])
                return (
                    value(scraped, "ivr_calls_total", disposition="declined") == 1
                    and value(scraped, "ivr_calls_total", disposition="answered") == 2
                    and value(scraped, "ivr_delivery_backlog") == 3
                )

            wait_until(night_done, 240, "every call of the night to end", process=proc)
            status, text = get(base + "/metrics")
            scraped = samples(text)

            # Calls and outcomes: what the citizens did.
            assert value(scraped, "ivr_calls_started_total") == 3
            assert value(scraped, "ivr_calls_total", disposition="busy") == 0
            assert value(scraped, "ivr_survey_outcomes_total", outcome="satisfied") == 1
            assert value(scraped, "ivr_survey_outcomes_total", outcome="unsatisfied") == 1
            assert value(scraped, "ivr_survey_outcomes_total", outcome="no_answer") == 1
            assert value(scraped, "ivr_survey_outcomes_total", outcome="no_input") == 0
            # Two keys, each stored after it came off the line.
            assert value(scraped, "ivr_key_to_outcome_seconds_count") == 2
            assert 0 < value(scraped, "ivr_key_to_outcome_seconds_sum") < 10
            assert value(scraped, "ivr_calls_in_progress") == 0
            assert value(scraped, "ivr_channels") == 4
            assert value(scraped, "ivr_channel_occupancy_ratio") == 0
            assert value(scraped, "ivr_sip_registered") == 1
            assert value(scraped, "ivr_sip_registration_state", state="registered") == 1
            # The import: 3 to call, 3 not to call, 2 unreadable rows.
            assert value(scraped, "ivr_import_items_total", result="new") == 3
            assert value(scraped, "ivr_import_items_total", result="not_called") == 3
            assert value(scraped, "ivr_import_items_total", result="rejected") == 2
            assert value(scraped, "ivr_import_lag_seconds") > 0
            # The portal is refusing: 3 ratings wait, none dead, errors counted by kind.
            assert value(scraped, "ivr_delivery_backlog") == 3
            assert value(scraped, "ivr_dead_letters") == 0
            assert value(scraped, "ivr_deliveries_total", result="delivered") == 3
            assert value(scraped, "ivr_deliveries_total", result="deferred") >= 1
            assert value(scraped, "ivr_portal_errors_total", kind="unavailable") >= 1
            assert value(scraped, "ivr_portal_errors_total", kind="auth") == 0
            # No label carries a phone number or a request id.
            assert "375291" not in text and "REQ-" not in text
            for item in lab.items:
                assert str(item["id"]) not in text

            # Alive and registered; status (another process) sees the node.
            assert get(base + "/readyz") == (200, "ready\n")
            out = lab.cli("status").stdout
            assert "running (1 node(s) alive)" in out
            assert "lab-night: alive" in out and "SIP registered" in out

            lab.portal.clear_faults()
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log_text = log_path.read_text()
        assert proc.returncode == 0, log_text[-3000:]

        # The night's own summary says what the counters said.
        assert "satisfied    1" in log_text and "unsatisfied  1" in log_text
        assert "no_answer    1" in log_text and "not_called   3" in log_text

        # logging.format: json: every log line is one JSON object (the summary is stdout).
        records = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
        assert len(records) > 10
        assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
        messages = [r["message"] for r in records]
        ended = [r for r in records if r["message"].startswith("call ended: request")]
        assert sorted(r["disposition"] for r in ended) == ["answered", "answered", "declined"]
        progress = [r for r in records if r["message"].startswith("progress ")]
        assert progress and progress[0]["total"] == 6  # 3 to call, 3 not to be called
        assert not any("converted prompt" in m for m in messages)  # DEBUG only now
        non_json = [
            line
            for line in log_text.splitlines()
            if line and not line.startswith(("{", "Night of", "  ", "    "))
        ]
        assert non_json == [], non_json[:5]

        # The night ended cleanly: its node left the list (gone, not silent).
        assert list_nodes(make_engine(f"sqlite:///{lab.database}"), SYSTEM_CLOCK.now()) == []
        out = lab.cli("status").stdout
        assert "no node running" in out and "lab-night" not in out


def _answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def test_the_service_serves_metrics_and_heartbeats_until_sigterm(tmp_path: Path) -> None:
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    overrides = {"metrics": {"listen": f"127.0.0.1:{port}"}, "node": {"name": "lab-run"}}
    citizens = [Citizen("+375291000044", "press:1")]
    with NightLab(tmp_path, lab_day(), citizens, with_bad_items=False, overrides=overrides) as lab:
        proc = lab.popen("run")
        try:
            wait_until(lambda: _answers(base + "/readyz"), 60, "/readyz", process=proc)

            def rated() -> bool:
                scraped = samples(get(base + "/metrics")[1])
                return (
                    value(scraped, "ivr_survey_outcomes_total", outcome="satisfied") == 1
                    and value(scraped, "ivr_calls_total", disposition="answered") == 1
                    and value(scraped, "ivr_deliveries_total", result="delivered") == 1
                )

            wait_until(rated, 120, "the satisfied citizen's call and rating", process=proc)
            scraped = samples(get(base + "/metrics")[1])
            assert value(scraped, "ivr_calls_started_total") == 1
            assert value(scraped, "ivr_delivery_backlog") == 0
            assert value(scraped, "ivr_key_to_outcome_seconds_count") == 1
            out = lab.cli("status").stdout
            assert "running (1 node(s) alive)" in out and "lab-run: alive" in out
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, (tmp_path / "runner-0.log").read_text()[-3000:]
        assert lab.ratings_by_request()[lab.items[0]["id"]]["outcome"] == "satisfied"
        # Stopped cleanly: the node left the list (gone, not silent).
        assert list_nodes(make_engine(f"sqlite:///{lab.database}"), SYSTEM_CLOCK.now()) == []
