"""The spoken comment end to end over loopback: SIPp citizens (through the strict Kamailio)
press 2 and speak a known sentence after the tone, ``ivr-rating night`` runs as a separate
process, and the real HTTP portal receives the rating with ``comment_expected`` and then the
WAV. What is asserted is what the citizen said and what the portal received."""

from __future__ import annotations

import hashlib
import io
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lab.comment_lab import spoken_through_line
from lab.night_lab import Citizen, LabSettings, NightLab, lab_day
from tests.helpers import best_match, wait_until

pytestmark = pytest.mark.peers

CITIZENS = (
    Citizen("+375291000101", "speak:pcmu"),
    Citizen("+375291000102", "speak:pcma"),
    Citizen("+375291000103", "speak:pcmu:bye"),  # hangs up 2.5 s into the sentence
    Citizen("+375291000104", "press:2"),  # says nothing after the tone
)


def samples_of(wav: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(wav), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, 8000, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def similarity(received: np.ndarray, law: str) -> float:
    """Peak cross-correlation of what we kept within what the citizen said (padded)."""
    said = np.concatenate([np.zeros(4000), spoken_through_line(law), np.zeros(4000)])
    return best_match(said, received)


def finished_calls(lab: NightLab) -> int:
    import sqlite3

    with sqlite3.connect(lab.database) as db:
        (n,) = db.execute("select count(*) from call_attempts where disposition != 'dialing'")
        return int(n[0] if isinstance(n, tuple) else n)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightLab]:
    """One night, killed (SIGKILL) after every call ended, with the ratings posted and their
    comments not (the portal answered each PUT 503, Retry-After 20 s); then run again, where
    the portal answers the first comment PUT 503 once more."""
    workdir = tmp_path_factory.mktemp("comment-night")
    settings = LabSettings(channels=4, max_attempts=1)
    with NightLab(workdir, lab_day(), CITIZENS, settings=settings, with_bad_items=False) as lab:
        lab.portal.fail_comments(3, 503, retry_after=20)
        proc = lab.popen("night", "--date", lab.day.isoformat())
        wait_until(lambda: lab.portal.comment_puts >= 3 and finished_calls(lab) == len(CITIZENS),
                   150, "three comment PUTs and every call finished", poll=0.2,
                   process=proc)  # fmt: skip
        posted = {r: b for r, _k, b in lab.portal.ratings}
        stored = {r for r, _s in lab.portal.comments}
        lab.in_flight = [r for r, b in posted.items()  # type: ignore[attr-defined]
                         if b["comment_expected"] and r not in stored]  # fmt: skip
        proc.kill()  # SIGKILL: a rating posted, its comment not delivered
        proc.wait(timeout=10)
        lab.portal.clear_faults()
        lab.portal.fail_comments(1, 503)  # then the first comment PUT fails once: retried
        puts_before = lab.portal.comment_puts
        run = lab.cli("night", "--date", lab.day.isoformat())
        assert run.returncode == 0, run.stderr[-3000:]
        lab.night_output = run.stdout + run.stderr  # type: ignore[attr-defined]
        lab.puts_after_kill = lab.portal.comment_puts - puts_before  # type: ignore[attr-defined]
        yield lab


def request_of(lab: NightLab, behaviour: str) -> str:
    return next(i["id"] for i, c in zip(lab.items, lab.citizens, strict=True)
                if c.behaviour == behaviour)  # fmt: skip


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
def test_the_portal_gets_the_rating_then_the_words_the_citizen_said(
    night: NightLab, law: str
) -> None:
    request_id = request_of(night, f"speak:{law}")
    ratings = night.ratings_by_request()
    body = ratings[request_id]
    assert (body["outcome"], body["digit"], body["comment_expected"]) == ("unsatisfied", "2", True)
    ((key, wav),) = [(k, w) for (r, k), w in night.portal.comments.items() if r == request_id]
    assert key == body["survey_id"]
    received = samples_of(wav)
    spoken_s = spoken_through_line(law).size / 8000
    assert abs(received.size / 8000 - spoken_s) < 0.5, "not the whole sentence, or more"
    assert similarity(received, law) > 0.9
    # the kept file is the one delivered, with its checksum in the database
    from storage.db import make_engine
    from storage.store import Store

    store = Store(make_engine(f"sqlite:///{night.database}"))
    (row,) = [c for c in store.comments() if c.portal_request_id == request_id]
    assert row.path is not None and Path(row.path).read_bytes() == wav
    assert row.sha256 == hashlib.sha256(wav).hexdigest() and row.state == "delivered"
    assert str(night.workdir / "comments") in row.path
    store.engine.dispose()


def test_hang_up_mid_comment_delivers_the_part_said(night: NightLab) -> None:
    request_id = request_of(night, "speak:pcmu:bye")
    assert night.ratings_by_request()[request_id]["comment_expected"] is True
    ((_, wav),) = [(k, w) for (r, k), w in night.portal.comments.items() if r == request_id]
    received = samples_of(wav)
    assert 1.5 < received.size / 8000 < 3.0  # the first 2.5 s of the sentence, trimmed
    assert similarity(received, "pcmu") > 0.9


def test_silence_after_the_tone_is_no_comment(night: NightLab) -> None:
    request_id = request_of(night, "press:2")
    body = night.ratings_by_request()[request_id]
    assert (body["outcome"], body["comment_expected"]) == ("unsatisfied", False)
    assert not [r for (r, _k) in night.portal.comments if r == request_id]


def test_sigkill_between_rating_and_comment_then_5xx_each_comment_stored_once(
    night: NightLab,
) -> None:
    assert night.in_flight, "the kill did not land between a rating and its comment"  # type: ignore[attr-defined]
    assert len(night.portal.comments) == 3  # the two whole sentences and the cut one
    # each comment not stored at the kill was sent once more, one of them twice (503 first)
    assert night.puts_after_kill == len(night.in_flight) + 1  # type: ignore[attr-defined]
    stored = [sid for _r, sid, _sha in night.portal.book.comment_log]
    assert len(stored) == len(set(stored)) == 3
    assert len(night.ratings_by_request()) == len(CITIZENS)  # one rating each
    assert "spoken comments: delivered 3" in night.night_output  # type: ignore[attr-defined]
