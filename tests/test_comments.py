"""Spoken comments: the held rating, the recording kept with the attempt, delivery after the
rating through the real portal emulator (retries, dead letters, the 1.0-portal alarm), and
retention. SQLite and PostgreSQL."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ivr.campaign.call_end import save_recording
from ivr.campaign.campaign import retention_job
from ivr.campaign.delivery import deliver_due, format_outbox
from ivr.campaign.metrics import CountingPortal
from ivr.core.comment_audio import Recording
from ivr.portal.client import PortalClient
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items
from storage.admin import Actor, AdminStore
from storage.comments import NewComment
from storage.store import NewSurvey, Store

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
DAY = date(2026, 11, 26)
PHONES = ["+375291000001", "+375291000002"]


def speech(seconds: float) -> bytes:
    n = int(seconds * 8000)
    return struct.pack(f"<{n}h", *(int(6000 * math.sin(i / 8.0)) for i in range(n)))


@pytest.fixture
def items() -> list[dict[str, str]]:
    return make_items(DAY, "Europe/Minsk", PHONES)


@pytest.fixture
def portal(items: list[dict[str, str]]) -> Iterator[PortalEmulator]:
    with PortalEmulator(items) as emu:
        yield emu


@pytest.fixture
def client(portal: PortalEmulator) -> Iterator[PortalClient]:
    with PortalClient(portal.base_url, "test-token", timeout_s=5, page_size=50) as c:
        yield c


def unsatisfied(store: Store, item: dict[str, str], node: str = "n1") -> str:
    """A survey answered 2 with a comment to follow: the rating is held."""
    closed = datetime.fromisoformat(item["closed_at"])
    store.add_survey(
        NewSurvey(
            item["id"], item["number"], closed, DAY, item["phone"], item["phone"], "ru", None
        ),  # fmt: skip
        NOW,
    )
    (survey,) = [s for s in store.due_surveys(NOW, 10) if s.portal_request_id == item["id"]]
    store.record_outcome(survey.id, "unsatisfied", "2", None, NOW, NOW,
                         hold_until=NOW + timedelta(minutes=3), node=node)  # fmt: skip
    return survey.id


def kept(tmp_path: Path, survey_id: str, seconds: float = 2.0) -> tuple[NewComment, Recording]:
    rec = Recording.of_pcm(speech(seconds))
    path = save_recording(tmp_path / "comments", survey_id, rec, NOW)
    return NewComment(None, str(path), rec.duration_s, rec.sha256, len(rec.wav)), rec


@pytest.mark.parametrize("counted", [False, True], ids=["client", "counted-as-the-runner-does"])
def test_the_rating_waits_for_the_comment_then_both_arrive_in_order(
    store: Store,
    portal: PortalEmulator,
    client: PortalClient,
    items: list,
    tmp_path: Path,
    counted: bool,
) -> None:
    """The runner hands delivery the client wrapped in ``CountingPortal``: the comment must
    still be PUT (it was not: the wrapper lacked put_comment, the night ended with them
    pending)."""
    sink = CountingPortal(client) if counted else client
    sid = unsatisfied(store, items[0])
    deliver_due(store, sink, NOW, node="n1")
    assert portal.ratings == []  # held while the citizen speaks
    comment, rec = kept(tmp_path, sid)
    store.settle_comment(sid, comment, NOW)
    stats = deliver_due(store, sink, NOW, node="n1")
    assert (stats.delivered, stats.comments_delivered) == (1, 1)
    ((_, key, body),) = portal.ratings
    assert key == sid and body["comment_expected"] is True
    assert portal.comments == {(items[0]["id"], sid): rec.wav}
    methods = [m for m, _ in portal.requests_seen]
    assert methods == ["POST", "PUT"]
    deliver_due(store, sink, NOW + timedelta(hours=1), node="n1")
    assert portal.comment_puts == 1  # never twice


def test_no_comment_means_comment_expected_false(
    store: Store, portal: PortalEmulator, client: PortalClient, items: list
) -> None:
    sid = unsatisfied(store, items[0])
    store.settle_comment(sid, None, NOW)
    deliver_due(store, client, NOW, node="n1")
    ((_, _, body),) = portal.ratings
    assert body["comment_expected"] is False and portal.comment_puts == 0


def test_a_crash_while_speaking_releases_the_rating_on_restart(
    store: Store, portal: PortalEmulator, client: PortalClient, items: list
) -> None:
    unsatisfied(store, items[0], node="n1")
    assert store.release_node_deliveries("n1", NOW) == 1  # what recover_after_restart does
    deliver_due(store, client, NOW, node="n1")
    ((_, _, body),) = portal.ratings
    assert body["comment_expected"] is False


def test_5xx_on_the_comment_is_retried_and_delivered_once(
    store: Store, portal: PortalEmulator, client: PortalClient, items: list, tmp_path: Path
) -> None:
    sid = unsatisfied(store, items[0])
    store.settle_comment(sid, kept(tmp_path, sid)[0], NOW)
    portal.fail_next(2, 503, after=1)  # the rating passes, the comment PUT fails twice
    deliver_due(store, client, NOW, node="n1")
    assert len(portal.ratings) == 1 and portal.comments == {}
    later = NOW
    for _ in range(3):
        later += timedelta(hours=1)
        deliver_due(store, client, later, node="n1")
    assert len(portal.comments) == 1 and portal.comment_puts == 3
    assert store.comment_counts()["delivered"] == 1


@pytest.mark.parametrize("status", [413, 415, 422])
def test_a_refused_comment_is_a_dead_letter_shown_and_retryable(
    store: Store,
    portal: PortalEmulator,
    client: PortalClient,
    items: list,
    tmp_path: Path,
    status: int,
) -> None:
    sid = unsatisfied(store, items[0])
    store.settle_comment(sid, kept(tmp_path, sid)[0], NOW)
    portal.fail_next(1, status, after=1)
    stats = deliver_due(store, client, NOW, node="n1")
    assert stats.comments_dead == 1
    report = format_outbox(store)
    assert f"dead comment: request {items[0]['id']} survey {sid}: HTTP {status}" in report
    deliver_due(store, client, NOW + timedelta(hours=2), node="n1")
    assert portal.comment_puts == 1  # not retried blindly
    requeued = AdminStore(store.engine).retry_dead(Actor("test"), NOW, [items[0]["id"]])
    assert requeued == [f"{items[0]['id']} (comment)"]
    deliver_due(store, client, NOW, node="n1")
    assert len(portal.comments) == 1


def test_a_1_0_portal_raises_the_alarm_and_comments_wait(
    store: Store, items: list, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        PortalEmulator(items, api_version="1.0") as old,
        PortalClient(old.base_url, "test-token", timeout_s=5, page_size=50) as client,
    ):
        a = unsatisfied(store, items[0])
        b = unsatisfied(store, items[1])
        store.settle_comment(a, kept(tmp_path, a)[0], NOW)
        store.settle_comment(b, kept(tmp_path, b)[0], NOW)
        stats = deliver_due(store, client, NOW, node="n1")
        assert stats.delivered == 2 and stats.comments_blocked
        assert old.comment_puts == 1  # the first 404 stops the others
        assert "ALARM" in caplog.text and "1.1" in caplog.text
        deliver_due(store, client, NOW + timedelta(hours=1), node="n1")
        assert old.comment_puts == 1  # they wait
        assert "comments wait" in format_outbox(store)
    with (
        PortalEmulator(items, book=old.book) as new,
        PortalClient(new.base_url, "test-token", timeout_s=5, page_size=50) as client,
    ):
        AdminStore(store.engine).retry_dead(Actor("test"), NOW)  # deliver --retry-dead
        deliver_due(store, client, NOW, node="n1")
        assert len(new.comments) == 2


def test_retention_deletes_recordings_of_surveys_finished_before_its_cutoff(
    store: Store, items: list, tmp_path: Path
) -> None:
    sid = unsatisfied(store, items[0])
    comment, _ = kept(tmp_path, sid)
    store.settle_comment(sid, comment, NOW)
    assert store.purge_recordings(NOW, NOW) == 0  # finished at NOW, not before
    assert Path(comment.path).exists()
    retention_job(store, NOW + timedelta(days=90), retention_days=90)  # the cutoff is NOW
    assert Path(comment.path).exists()
    retention_job(store, NOW + timedelta(days=91), retention_days=90)
    assert not Path(comment.path).exists()
    (row,) = store.comments()
    assert (row.path, row.sha256, row.state) == (None, comment.sha256, "dead")
