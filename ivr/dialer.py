"""The dial loop: keeps up to ``dialing.channels`` survey calls going inside the call windows.

Each attempt is committed as ``dialing`` before its INVITE goes out; its end is written with
the SIP facts; an unanswered one is retried after ``dialing.retry_delay`` up to
``dialing.max_attempts``, then given its final ``no_answer``.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ivr.call_runner import CallPlan, CallReport, PromptRenderer, RunnerSettings, run_call
from ivr.callflow import FlowSettings, RecordOutcome
from ivr.clock import Clock
from ivr.config import Config
from ivr.errors import SipError
from ivr.intake import mask_phone
from ivr.policy import Final, after_unanswered, disposition
from ivr.sip.api import SipPhone
from ivr.windows import can_start_call, next_opening
from storage.store import AttemptResult, DueSurvey, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DialerSettings:
    channels: int
    max_attempts: int
    retry_delay: timedelta
    runner: RunnerSettings
    dial_prefix: str
    default_language: str

    @classmethod
    def from_config(cls, config: Config) -> DialerSettings:
        d = config.dialing
        return cls(
            channels=d.channels,
            max_attempts=d.max_attempts,
            retry_delay=d.retry_delay,
            runner=RunnerSettings(
                ring_timeout_s=d.ring_timeout_s,
                max_call_s=d.max_call_s,
                flow=FlowSettings(config.ivr.input_timeout_s, config.ivr.max_repeats),
            ),
            dial_prefix=config.sip.dial_prefix,
            default_language=config.ivr.default_language,
        )


class Dialer:
    def __init__(
        self,
        store: Store,
        phone: SipPhone,
        prompts: PromptRenderer,
        config: Config,
        clock: Clock,
        settings: DialerSettings | None = None,
    ) -> None:
        self.store = store
        self.phone = phone
        self.prompts = prompts
        self.config = config
        self.clock = clock
        self.settings = settings or DialerSettings.from_config(config)
        self._pool = ThreadPoolExecutor(self.settings.channels, thread_name_prefix="channel")
        self._active: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.paused = threading.Event()

    # ---- one call -----------------------------------------------------------------------
    def _plan(self, survey: DueSurvey) -> CallPlan:
        return CallPlan(
            dial_string=self.settings.dial_prefix + survey.phone.lstrip("+"),
            request_number=survey.request_number,
            language=survey.language or self.settings.default_language,
        )

    def call_one(self, survey: DueSurvey, attempt_id: int) -> None:
        """Place one attempt for ``survey`` (already committed as dialing) and write its end."""
        plan = self._plan(survey)

        def on_outcome(rec: RecordOutcome, answered_at: datetime | None) -> None:
            self.store.record_outcome(
                survey.id, rec.outcome.value, rec.key, rec.reason, answered_at, self.clock.now()
            )

        try:
            report = run_call(
                self.phone, plan, self.prompts, self.settings.runner, self.clock, on_outcome
            )
        except SipError as exc:
            log.error("request %s: could not dial: %s", survey.portal_request_id, exc)
            report = CallReport(call_id=None, final_reason=str(exc), ended_at=self.clock.now())
        except Exception:
            # A bug of ours must not lose the attempt: close it as failed and retry later.
            log.exception("request %s: call crashed", survey.portal_request_id)
            report = CallReport(
                call_id=None, final_reason="internal error", ended_at=self.clock.now()
            )
        self._settle(survey, attempt_id, report)

    def _settle(self, survey: DueSurvey, attempt_id: int, report: CallReport) -> None:
        now = self.clock.now()
        disp = disposition(report.answered, report.final_status, report.ended_by)
        self.store.finish_attempt(
            attempt_id,
            AttemptResult(
                sip_call_id=report.call_id,
                sip_status=report.final_status,
                sip_reason=report.final_reason,
                answered_at=report.answered_at,
                ended_at=report.ended_at or now,
                keys=report.keys,
                disposition=disp,
                prompt_version=report.prompt_version,
            ),
        )
        attempts = survey.attempts + 1
        if report.answered:
            if report.outcome is None:  # cannot happen with the flow; never leave it open
                self.store.record_outcome(
                    survey.id, "no_input", None, "no_outcome", report.answered_at, now
                )
            outcome = report.outcome.outcome.value if report.outcome else "no_input"
        else:
            decision = after_unanswered(
                disp, attempts, self.settings.max_attempts, self.settings.retry_delay, now
            )
            if isinstance(decision, Final):
                self.store.record_outcome(
                    survey.id, decision.outcome, None, decision.reason, None, now
                )
                outcome = f"{decision.outcome} ({decision.reason})"
            else:
                self.store.schedule_retry(survey.id, decision.at)
                outcome = f"retry at {decision.at.isoformat(timespec='seconds')}"
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
        )

    # ---- the loop -----------------------------------------------------------------------
    def _reap(self) -> int:
        with self._lock:
            self._active = {f for f in self._active if not f.done()}
            return len(self._active)

    def _done(self, fut: Future[None]) -> None:
        self._wake.set()

    def start_due(self, now: datetime, local_date: date | None = None) -> int:
        """Start calls for due surveys on free channels; returns how many were started."""
        if self.paused.is_set():
            return 0
        max_call = timedelta(seconds=self.settings.runner.max_call_s)
        if not can_start_call(now, self.config.call_windows, self.config.tz, max_call):
            return 0
        free = self.settings.channels - self._reap()
        if free <= 0:
            return 0
        started = 0
        for survey in self.store.due_surveys(now, free, local_date):
            attempt_id = self.store.start_attempt(survey.id, now)
            fut = self._pool.submit(self.call_one, survey, attempt_id)
            fut.add_done_callback(self._done)
            with self._lock:
                self._active.add(fut)
            started += 1
        return started

    def active_calls(self) -> int:
        return self._reap()

    def wait(self, seconds: float) -> None:
        """Sleep until a channel frees or ``seconds`` pass."""
        self._wake.wait(max(0.0, seconds))
        self._wake.clear()

    def seconds_until_work(self, now: datetime, local_date: date | None = None) -> float:
        """How long the loop may sleep: until the next retry is due or the next window opens."""
        due = self.store.next_attempt_time(local_date)
        if due is None:
            return 1.0
        max_call = timedelta(seconds=self.settings.runner.max_call_s)
        opening = next_opening(max(now, due), self.config.call_windows, self.config.tz, max_call)
        target = opening or due
        return min(max((target - now).total_seconds(), 0.0), 30.0)

    def drain(self, timeout: float | None = None) -> None:
        """Let the calls in progress finish (used on shutdown)."""
        self._pool.shutdown(wait=True, cancel_futures=False)

    def __enter__(self) -> Dialer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drain()


def describe_next_opening(config: Config, now: datetime) -> str:
    max_call = timedelta(seconds=config.dialing.max_call_s)
    opening = next_opening(now, config.call_windows, config.tz, max_call)
    if opening is None:
        return "no call window in the next 8 days"
    return opening.astimezone(config.tz).isoformat(timespec="minutes")
