"""The end of a survey call, written: each attempt with its SIP facts, each survey's outcome
(as the call flow decides it, or once the call is over: a retry along its ladder or a final
outcome), and a spoken comment's recording.

:class:`CallEnds` is the part of :class:`~ivr.campaign.dialer.Dialer` that writes; the dialer
holds the configuration it reads (reloaded while calls run).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.campaign import metrics
from ivr.campaign.call_runner import CallReport
from ivr.core.call_events import RecordOutcome
from ivr.core.clock import Clock
from ivr.core.comment_audio import Recording
from ivr.core.config import Config
from ivr.core.intake import mask_phone
from ivr.core.policy import (
    Final,
    after_no_input,
    counted_attempts,
    decide_unanswered,
    disposition,
)
from ivr.core.vocabulary import Disposition, Outcome, Reason
from ivr.core.windows import CallCalendar, format_local, local_day_bounds, next_opening
from storage.comments import NewComment
from storage.store import AttemptResult, DueSurvey, Store

if TYPE_CHECKING:
    from ivr.campaign.dialer import DialerSettings

log = logging.getLogger(__name__)


class CallEnds:
    """Writes the end of calls; the dialer provides what it reads."""

    store: Store
    clock: Clock
    config: Config
    settings: DialerSettings
    calendar: CallCalendar
    node: str
    lease: timedelta

    def _on_outcome(self, rec: RecordOutcome, phone: str, answered_at: datetime | None) -> None:
        """An outcome the call flow decided, written at once (before the call ends)."""
        now = self.clock.now()
        if rec.outcome is Outcome.NO_INPUT and rec.reason is None:
            return  # silence or wrong keys: _settle decides on a call in a later window
        if rec.outcome is Outcome.OPTED_OUT:
            # This survey opted_out; every other open one of the number: do_not_call.
            closed = self.store.opt_out(rec.survey_id, phone, rec.key or "9", answered_at,
                                        now).closed  # fmt: skip
            metrics.count_outcome(Outcome.OPTED_OUT)
            for _ in closed:
                metrics.count_outcome(Outcome.NOT_CALLED)
            if closed:
                log.info("phone %s opted out: request(s) %s not called (do_not_call)",
                         mask_phone(phone), ", ".join(closed))  # fmt: skip
            return
        # With a comment to follow, the rating waits for it (held in the same transaction;
        # after a crash the restarted node releases it, without the comment).
        hold = now + self.lease if rec.comment_follows else None
        self._record(rec.survey_id, rec.outcome.value, rec.key, rec.reason, answered_at, now,
                     hold_until=hold)  # fmt: skip

    def _keep_comment(
        self, survey_id: str, attempt_id: int | None, recording: Recording | None
    ) -> None:
        """The file first (written and synced), then its row and the rating's release in one
        transaction: a crash in between leaves an orphan file, never a row without a file."""
        now = self.clock.now()
        comment = None
        if recording is not None:
            path = save_recording(self.config.ivr.comment_dir, survey_id, recording, now)
            comment = NewComment(attempt_id, str(path), recording.duration_s, recording.sha256,
                                 len(recording.wav))  # fmt: skip
            log.info("survey %s: comment kept (%.1f s, sha256 %s) at %s", survey_id,
                     recording.duration_s, recording.sha256[:12], path)  # fmt: skip
        self.store.settle_comment(survey_id, comment, now)

    def _not_dialable(self, surveys: list[DueSurvey], attempt_ids: list[int]) -> None:
        now = self.clock.now()
        where = ",".join(sv.portal_request_id for sv in surveys)
        phone = mask_phone(surveys[0].phone)
        log.error("request(s) %s: %s is not a dialable number; not called", where, phone)
        result = AttemptResult(None, None, "not dialable", None, now, "", Disposition.FAILED, None)
        for survey, attempt_id in zip(surveys, attempt_ids, strict=True):
            self.store.finish_attempt(attempt_id, result)
            self._record(survey.id, Outcome.NOT_CALLED, None, Reason.DISALLOWED_NUMBER, None, now)

    def _record(
        self,
        survey_id: str,
        outcome: str,
        key: str | None,
        reason: str | None,
        answered_at: datetime | None,
        now: datetime,
        hold_until: datetime | None = None,
    ) -> None:
        """Store a survey's final outcome (and count it for /metrics); ``hold_until``: its
        rating waits for a spoken comment (see ``storage.comments``)."""
        self.store.record_outcome(survey_id, outcome, key, reason, answered_at, now,
                                  hold_until=hold_until, node=self.node)  # fmt: skip
        metrics.count_outcome(outcome)

    def _settle(self, surveys: list[DueSurvey], attempt_ids: list[int], report: CallReport) -> None:
        """Write the end of one call: each survey's attempt, then its outcome or its retry."""
        now = self.clock.now()
        disp = disposition(report.answered, report.final_status, report.ended_by)
        metrics.CALLS_ENDED.labels(disposition=disp).inc()
        result = AttemptResult(
            sip_call_id=report.call_id,
            sip_status=report.final_status,
            sip_reason=report.final_reason,
            answered_at=report.answered_at,
            ended_at=report.ended_at or now,
            keys=report.keys,
            disposition=disp,
            prompt_version=report.prompt_version,
            key_sources=report.key_sources or None,
        )
        recorded = {rec.survey_id: rec for rec in report.outcomes}
        for survey, attempt_id in zip(surveys, attempt_ids, strict=True):
            self.store.finish_attempt(attempt_id, result)
            outcome = self._survey_after(survey, recorded.get(survey.id), report, now)
            attempts = survey.attempts + 1
            log.info(
                "call ended: request %s phone %s attempt %d: SIP %s %s, %s, keys %r -> %s",
                survey.portal_request_id,
                mask_phone(survey.phone),
                attempts,
                report.final_status,
                report.final_reason or "",
                disp,
                report.keys,
                outcome,
                # as fields of their own in JSON logs (never the phone or the request id)
                extra={"disposition": disp, "attempt": attempts, "sip_status": report.final_status},
            )

    def _survey_after(
        self, survey: DueSurvey, rec: RecordOutcome | None, report: CallReport, now: datetime
    ) -> str:
        """What becomes of ``survey`` after the call (its outcome, or its retry): for the log."""
        if report.answered:
            if rec is None or (rec.outcome is Outcome.NO_INPUT and rec.reason is None):
                # No answer recorded (silence, or the call crashed after the 200 OK):
                # one more call in a later window if allowed, else final no_input.
                return self._after_no_input(survey, report.answered_at, now)
            return rec.outcome.value
        decision = decide_unanswered(
            self.store.attempt_history(survey.id),
            self.settings.max_attempts,
            self.config.dialing.ladder,
            now,
            self._deadline(survey),
        )
        if isinstance(decision, Final):
            self._record(survey.id, decision.outcome, None, decision.reason, None, now)
            return f"{decision.outcome} ({decision.reason})"
        self.store.schedule_retry(survey.id, decision.at)
        return f"retry at {format_local(decision.at, self.config.tz)}"

    def _after_no_input(
        self, survey: DueSurvey, answered_at: datetime | None, now: datetime
    ) -> str:
        """Answered, no valid key: one more call in a later call window, else final. The later
        window is on the next day: a number gets at most one answered call a day."""
        history = self.store.attempt_history(survey.id)
        max_call = timedelta(seconds=self.settings.runner.max_call_s)
        tomorrow = now.astimezone(self.config.tz).date() + timedelta(days=1)
        later = next_opening(
            local_day_bounds(tomorrow, self.config.tz)[0], self.calendar, self.config.tz, max_call
        )
        decision = after_no_input(
            no_input_calls=history.count(Disposition.ANSWERED),
            allowed_retries=self.config.dialing.retry.no_input_retries,
            counted=counted_attempts(history),
            max_attempts=self.settings.max_attempts,
            next_window=later,
            deadline=self._deadline(survey),
        )
        if isinstance(decision, Final):
            self._record(survey.id, Outcome.NO_INPUT, None, None, answered_at, now)
            return Outcome.NO_INPUT
        self.store.schedule_retry(survey.id, decision.at)
        return f"no_input, one more call at {format_local(decision.at, self.config.tz)}"

    def _deadline(self, survey: DueSurvey) -> datetime | None:
        if survey.closed_at is None:
            return None
        return survey.closed_at + self.config.dialing.survey_deadline


def save_recording(root: Path, survey_id: str, recording: Recording, now: datetime) -> Path:
    """Write the WAV as ``root/YYYY-MM-DD/<survey_id>.wav`` (UTC day), synced to disk."""
    folder = root / now.astimezone(UTC).date().isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / f"{survey_id}.wav").resolve()
    tmp = path.with_suffix(".part")
    with tmp.open("wb") as f:
        f.write(recording.wav)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path
