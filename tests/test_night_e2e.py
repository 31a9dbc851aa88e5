"""A whole night end to end over loopback: Kamailio (strict: 407 on INVITE, no ACK rescue),
SIPp and baresip citizens, a real HTTP portal, ``ivr-rating night`` as a separate process.

What is asserted is what the citizens did and what the portal received."""

from __future__ import annotations

import csv
import io
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.night_lab import DEMO_CITIZENS, NightLab, lab_day, opening_seconds
from lab.readback import attempts_of
from prompts.library import wav_to_u8
from tests.helpers import best_match, media_processes, u8_signal

pytestmark = pytest.mark.peers

# What each behaviour must end as: outcome, reason, digit, attempts (max_attempts is 2).
EXPECTED = {
    "press:1": ("satisfied", None, "1", 1),
    "press:2": ("unsatisfied", None, "2", 1),
    "baresip:1": ("satisfied", None, "1", 1),
    "silent": ("no_input", None, None, 1),
    "hangup:3000": ("no_input", "remote_hangup", None, 1),
    "busy": ("no_answer", "busy", None, 2),
    "no_answer": ("no_answer", "no_answer", None, 2),
    "decline": ("no_answer", "declined", None, 1),
    "inband_pcma:2": ("unsatisfied", None, "2", 1),
    "info:1": ("satisfied", None, "1", 1),
    "speak:pcmu": ("unsatisfied", None, "2", 1),
}
NOT_CALLED = {
    "REQ-BAD-PHONE": "invalid_phone",
    "REQ-NO-CONSENT": "no_consent",
    "REQ-FOREIGN": "disallowed_number",
}
REJECTED = {"REQ-NO-PHONE": "phone", "REQ-BAD-DATE": "closed_at"}


@dataclass
class NightRun:
    lab: NightLab
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    invites_after_first: int
    invites_after_second: int
    ratings_after_first: int
    media_left: set[int]  # media processes started by the runs and still there after them


def count_invites(lab: NightLab) -> int:
    """INVITEs that reached the citizens (SIPp traces and baresip logs)."""
    n = sum(s.messages().count("INVITE sip:") for s in lab.sipps)
    return n + sum(b.log().count("Incoming call from") for b in lab.baresips.values())


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightRun]:
    workdir = tmp_path_factory.mktemp("night")
    before = media_processes()
    with NightLab(workdir, lab_day()) as lab:
        lab.arm_baresips(opening_seconds(lab))
        first = lab.cli("night", "--date", lab.day.isoformat())
        invites1, ratings1 = count_invites(lab), len(lab.portal.ratings)
        second = lab.cli("night", "--date", lab.day.isoformat())
        left = media_processes() - before
        yield NightRun(lab, first, second, invites1, count_invites(lab), ratings1, left)


def test_night_exits_zero_and_prints_the_summary(night: NightRun) -> None:
    assert night.first.returncode == 0, night.first.stderr[-3000:]
    out = night.first.stdout
    assert "satisfied    4" in out and "unsatisfied  4" in out
    assert "no_input     2" in out and "no_answer    3" in out and "not_called   3" in out
    assert "Unsatisfied (sent back for rework and control):" in out
    assert out.count("request REQ-") == 4  # the four unsatisfied rows
    assert "spoken comments: delivered 1" in out


def test_no_media_process_outlives_the_night(night: NightRun) -> None:
    """The calls' media ran in a process of its own; it ended with ``night``."""
    assert night.media_left == set()


def test_each_outcome_posted_matches_what_the_citizen_did(night: NightRun) -> None:
    lab = night.lab
    ratings = lab.ratings_by_request()  # asserts one rating per request
    for item, citizen in zip(lab.items, DEMO_CITIZENS, strict=False):
        outcome, reason, digit, attempts = EXPECTED[citizen.behaviour]
        body = ratings[item["id"]]
        got = (body["outcome"], body["reason"], body["digit"], body["attempts"])
        assert got == (outcome, reason, digit, attempts), (citizen, body)
        assert body["return_for_rework"] is (outcome == "unsatisfied")
        # only the citizen who spoke after the tone left a comment (the others were silent)
        assert body["comment_expected"] is (citizen.behaviour == "speak:pcmu")
        assert (body["answered_at"] is not None) is (
            outcome in ("satisfied", "unsatisfied", "no_input")
        )
    for request_id, reason in NOT_CALLED.items():
        assert (ratings[request_id]["outcome"], ratings[request_id]["reason"]) == (
            "not_called",
            reason,
        )
        assert ratings[request_id]["attempts"] == 0
    assert not set(REJECTED) & set(ratings)
    assert lab.portal.rating_posts == len(lab.portal.ratings) == len(DEMO_CITIZENS) + 3


def test_bad_rows_are_skipped_with_their_reason(night: NightRun) -> None:
    for request_id, field in REJECTED.items():
        assert f"{request_id}: {field}" in night.first.stdout
        assert f"portal item rejected (request {request_id}): {field}" in night.first.stderr


def test_database_and_portal_agree(night: NightRun) -> None:
    report = night.lab.cli("report", "--date", night.lab.day.isoformat(), "--csv")
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    ratings = night.lab.ratings_by_request()
    assert {r["request_id"] for r in rows} == set(ratings)
    for row in rows:
        body = ratings[row["request_id"]]
        assert row["outcome"] == body["outcome"]
        assert row["key"] == (body["digit"] or "")
        assert int(row["attempts"]) == body["attempts"]
        assert row["delivered"] == "delivered"
        assert "****" in row["phone"] or row["phone"] == ""  # masked


def test_a_second_run_calls_nobody_and_posts_nothing(night: NightRun) -> None:
    assert night.second.returncode == 0, night.second.stderr[-2000:]
    assert night.invites_after_second == night.invites_after_first
    assert len(night.lab.portal.ratings) == night.ratings_after_first
    known = f"{len(DEMO_CITIZENS) + len(NOT_CALLED)} already known"
    assert known in night.second.stdout + night.second.stderr


def test_retries_are_separate_calls_recorded_with_their_sip_status(night: NightRun) -> None:
    from storage.db import make_engine
    from storage.store import Store

    store = Store(make_engine(f"sqlite:///{night.lab.database}"))
    busy_id = next(
        i["id"]
        for i, c in zip(night.lab.items, DEMO_CITIZENS, strict=False)
        if c.behaviour == "busy"
    )
    ring_id = next(
        i["id"]
        for i, c in zip(night.lab.items, DEMO_CITIZENS, strict=False)
        if c.behaviour == "no_answer"
    )
    busy = attempts_of(store, busy_id)
    ring = attempts_of(store, ring_id)
    assert [(a.sip_status, a.disposition) for a in busy] == [(486, "busy")] * 2
    assert [(a.sip_status, a.disposition) for a in ring] == [(487, "no_answer")] * 2
    gap = (busy[1].started_at - busy[0].ended_at).total_seconds()  # type: ignore[operator]
    assert gap >= 15 - 1, "retried before dialing.retry_delay"
    store.engine.dispose()


def test_keys_came_the_way_each_citizen_sent_them(night: NightRun) -> None:
    """RFC 4733 events, a SIP INFO, in-band tones on an A-law line: each stored with its path."""
    from storage.db import make_engine
    from storage.store import Store

    store = Store(make_engine(f"sqlite:///{night.lab.database}"))
    sources = {"press:1": "r", "press:2": "r", "baresip:1": "r", "info:1": "i",
               "inband_pcma:2": "b", "speak:pcmu": "r"}  # fmt: skip
    for item, citizen in zip(night.lab.items, DEMO_CITIZENS, strict=False):
        if citizen.behaviour in sources:
            (attempt,) = attempts_of(store, item["id"])
            assert attempt.key_sources == sources[citizen.behaviour], citizen
    store.engine.dispose()


def test_the_citizen_heard_the_prompt_naming_the_request(night: NightRun) -> None:
    """baresip recorded the call: the opening prompt, with this request's number, is in it."""
    lab = night.lab
    from ivr.core.config import load_config
    from ivr.entry.app import make_prompts

    prompts = make_prompts(load_config(lab.config_path, env=lab.env()))
    ((user, citizen),) = lab.baresips.items()
    item = next(i for i, c in zip(lab.items, DEMO_CITIZENS, strict=False) if c.user == user)
    recordings = citizen.recordings()
    assert recordings, "baresip recorded nothing"
    heard = u8_signal(wav_to_u8(recordings[-1]))
    expected = u8_signal(prompts.render("ru", ["about_request", f"number:{item['number']}"]))
    other = u8_signal(prompts.render("ru", ["about_request", "number:9998877"]))
    assert best_match(heard, expected) > 0.9
    assert best_match(heard, other) < best_match(heard, expected) - 0.1


def test_unreachable_portal_is_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    lab = NightLab(tmp_path, lab_day())
    lab.workdir.mkdir(parents=True, exist_ok=True)
    # A config pointing at a port nobody listens on (no peers needed: the portal comes first).
    import yaml

    from lab.peer_process import find_free_udp_port

    cfg = {
        "database": f"sqlite:///{lab.database}",
        "portal": {
            "base_url": f"http://127.0.0.1:{find_free_udp_port()}/api/v1",
            "token": "${PORTAL_TOKEN}",
            "timeout_s": 2,
            "retry_budget_s": 0,  # give up at once: the retries are tested elsewhere
        },
        "sip": {
            "server": "127.0.0.1",
            "username": "dialer",
            "password": "${SIP_PASSWORD}",
            "local_ip": "127.0.0.1",
        },
    }
    lab.config_path.write_text(yaml.safe_dump(cfg))
    run = lab.cli("night", "--date", lab.day.isoformat())
    assert run.returncode == 3, run.stderr
    assert "portal error" in run.stderr and "127.0.0.1" in run.stderr
    assert "demo-portal-token" not in run.stderr + run.stdout
    report = lab.cli("report", "--date", lab.day.isoformat(), "--csv")
    assert report.stdout.strip().splitlines()[1:] == []  # nothing half-imported
