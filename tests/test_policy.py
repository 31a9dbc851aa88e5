"""Dispositions and the retry ladder, with time as an input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr.core.config import parse_config
from ivr.core.policy import (
    Final,
    Retry,
    after_no_input,
    counted_attempts,
    decide_unanswered,
    disposition,
)
from ivr.sip.api import EndedBy

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
DEFAULT = parse_config(
    {
        "portal": {"base_url": "http://127.0.0.1:9", "token": "t"},
        "sip": {"server": "s", "username": "u", "password": "p", "local_ip": "127.0.0.1"},
        "dialing": {"max_attempts": 3},
    },
    env={},
).dialing


@pytest.mark.parametrize(
    ("answered", "status", "ended_by", "expected"),
    [
        (True, 200, EndedBy.REMOTE_BYE, "answered"),
        (False, 486, EndedBy.REMOTE_REJECT, "busy"),
        (False, 600, EndedBy.REMOTE_REJECT, "busy"),
        (False, 480, EndedBy.REMOTE_REJECT, "no_answer"),
        (False, 408, EndedBy.REMOTE_REJECT, "no_answer"),
        (False, 487, EndedBy.LOCAL_CANCEL, "no_answer"),
        (False, None, EndedBy.LOCAL_CANCEL, "no_answer"),
        (False, 603, EndedBy.REMOTE_REJECT, "declined"),
        (False, 404, EndedBy.REMOTE_REJECT, "invalid_number"),
        (False, 484, EndedBy.REMOTE_REJECT, "invalid_number"),
        (False, 604, EndedBy.REMOTE_REJECT, "invalid_number"),
        (False, 503, EndedBy.REMOTE_REJECT, "failed"),
        (False, 500, EndedBy.REMOTE_REJECT, "failed"),
        (False, None, EndedBy.NO_RESPONSE, "failed"),
        (False, None, None, "failed"),
    ],
    ids=[
        "answered",
        "486",
        "600",
        "480",
        "408",
        "cancelled-487",
        "cancelled-silent",
        "603",
        "404",
        "484",
        "604",
        "503",
        "500",
        "no-response",
        "dial-error",
    ],
)
def test_disposition(
    answered: bool, status: int | None, ended_by: EndedBy | None, expected: str
) -> None:
    assert disposition(answered, status, ended_by) == expected


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (["busy"], Retry(NOW + 20 * M)),
        (["busy", "busy"], Retry(NOW + 40 * M)),
        (["busy", "busy", "busy"], Final("no_answer", "busy")),
        (["no_answer"], Retry(NOW + 1 * H)),
        (["no_answer", "no_answer"], Retry(NOW + 2 * H)),
        (["busy", "no_answer"], Retry(NOW + 1 * H)),
        (["no_answer", "busy"], Retry(NOW + 20 * M)),
        (["failed"], Retry(NOW + 5 * M)),
        (["failed", "failed"], Retry(NOW + 1 * H)),
        (["failed", "failed", "failed"], Retry(NOW + 2 * H)),
        (["busy", "failed", "busy", "failed"], Retry(NOW + 5 * M)),
        (["interrupted"], Retry(NOW + 1 * H)),
        (["declined"], Final("no_answer", "declined")),
        (["invalid_number"], Final("no_answer", "invalid_number")),
        (["busy", "busy", "failed"], Retry(NOW + 5 * M)),  # trunk faults use up nothing
        (["busy", "no_answer", "no_answer"], Final("no_answer", "no_answer")),
    ],
    ids=[
        "busy-1",
        "busy-2",
        "busy-max",
        "noans-1",
        "noans-2",
        "busy-then-noans",
        "noans-then-busy",
        "failed-1",
        "failed-2",
        "failed-3",
        "failed-between",
        "interrupted",
        "declined",
        "invalid",
        "failed-after-two",
        "max-mixed",
    ],
)
def test_default_ladder(history: list[str], expected: Retry | Final) -> None:
    assert decide_unanswered(history, DEFAULT.max_attempts, DEFAULT.ladder, NOW) == expected


def test_trunk_faults_do_not_count() -> None:
    assert counted_attempts(["failed", "busy", "failed", "no_answer"]) == 2


def test_deadline_ends_the_survey() -> None:
    deadline = NOW + 30 * M
    assert decide_unanswered(["busy"], 3, DEFAULT.ladder, NOW, deadline) == Retry(NOW + 20 * M)
    assert decide_unanswered(["busy", "busy"], 3, DEFAULT.ladder, NOW, deadline) == Final(
        "no_answer", "survey_expired"
    )


def test_retry_delay_shorthand_replaces_unset_steps() -> None:
    cfg = parse_config(
        {
            "portal": {"base_url": "http://127.0.0.1:9", "token": "t"},
            "sip": {"server": "s", "username": "u", "password": "p", "local_ip": "127.0.0.1"},
            "dialing": {"retry_delay": "15s", "retry": {"busy": ["1m", "3m"]}},
        },
        env={},
    ).dialing
    assert cfg.ladder("busy") == (M, 3 * M)
    assert cfg.ladder("no_answer") == (timedelta(seconds=15),)


@pytest.mark.parametrize(
    ("no_input_calls", "counted", "window", "expected"),
    [
        (1, 1, NOW + 3 * H, Retry(NOW + 3 * H)),
        (2, 2, NOW + 3 * H, Final("no_input", None)),
        (1, 3, NOW + 3 * H, Final("no_input", None)),
        (1, 1, None, Final("no_input", None)),
    ],
    ids=["first-no-input", "second-no-input", "attempts-used-up", "no-window"],
)
def test_no_input_gets_one_more_call_in_a_later_window(
    no_input_calls: int, counted: int, window: datetime | None, expected: Retry | Final
) -> None:
    assert after_no_input(no_input_calls, 1, counted, 3, window) == expected
