"""The dial loop: keeps up to ``dialing.channels`` survey calls going inside the call windows.

Each attempt is committed as ``dialing`` before its INVITE goes out; its end is written with
the SIP facts; an unanswered one is retried along its ladder (``dialing.retry``) up to
``dialing.max_attempts``, then given its final ``no_answer``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ivr.campaign import metrics
from ivr.campaign.call_end import CallEnds
from ivr.campaign.call_runner import (
    CallPlan,
    CallReport,
    OperatorLine,
    PromptRenderer,
    RunnerSettings,
    run_call,
)
from ivr.core.call_events import RecordOutcome
from ivr.core.call_script import FlowSettings, RequestInfo
from ivr.core.clock import Clock
from ivr.core.comment_audio import Recording
from ivr.core.config import MAX_CHANNELS, Config
from ivr.core.errors import SipError
from ivr.core.intake import is_dialable
from ivr.core.pacing import TokenBucket
from ivr.core.vocabulary import Disposition
from ivr.core.windows import (
    CallCalendar,
    can_start_call,
    format_local,
    local_day_bounds,
    next_opening,
)
from ivr.sip.api import SipPhone
from storage.store import DueSurvey, Store

log = logging.getLogger(__name__)

LIVE_CHECK_S = 2.0  # how often a node looks for settings saved in the console


def operator_line(config: Config) -> OperatorLine | None:
    """3 "talk to an operator" when ``ivr.operator_transfer`` is on (``transfer.target`` is
    then required by the configuration), with ``transfer.hours`` in ``timezone``; closed on
    the calendar's public holidays and blackout dates, when nobody is at the desk."""
    if not config.ivr.operator_transfer or not config.transfer.target:
        return None
    transfer, tz = config.transfer, config.tz
    calendar = CallCalendar.from_config(config)

    def is_open(at: datetime) -> bool:
        day_off = calendar.kind(at.astimezone(tz).date()) in ("holiday", "blackout")
        return not day_off and transfer.is_open(at, tz)

    return OperatorLine(transfer.target, is_open)


@dataclass(frozen=True)
class DialerSettings:
    channels: int
    max_attempts: int
    runner: RunnerSettings
    dial_prefix: str
    default_language: str

    @classmethod
    def from_config(cls, config: Config) -> DialerSettings:
        d = config.dialing
        return cls(
            channels=d.channels,
            max_attempts=d.max_attempts,
            runner=RunnerSettings(
                ring_timeout_s=d.ring_timeout_s,
                max_call_s=d.max_call_s,
                flow=FlowSettings(
                    config.ivr.input_timeout_s,
                    config.ivr.max_repeats,
                    config.ivr.offer_opt_out,
                    voice_comment=config.ivr.voice_comment,
                    comment_max_s=config.ivr.comment_max_s,
                    comment_silence_s=config.ivr.comment_silence_s,
                    comment_no_speech_s=config.ivr.input_timeout_s,
                ),
                media_timeout_s=config.ivr.media_timeout_s,
                operator=operator_line(config),
            ),
            dial_prefix=config.sip.dial_prefix,
            default_language=config.ivr.default_language,
        )


class Dialer(CallEnds):
    """Keeps up to ``dialing.channels`` calls going; :class:`CallEnds` writes how they end."""

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
        self.clock = clock
        # The file's configuration; the console's live settings go over it (``_live_check``).
        self.file_config = config
        self._live_stamp, config = self._live(config)
        self._live_read_at = clock.monotonic()
        self.config = config
        self.settings = settings or DialerSettings.from_config(config)
        # Threads are started only as calls need them; ``settings.channels`` is the cap, so a
        # reload can raise or lower it without a restart.
        self._pool = ThreadPoolExecutor(MAX_CHANNELS, thread_name_prefix="channel")
        self._active: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.paused = threading.Event()
        self.calendar = CallCalendar.from_config(config)
        self.bucket = TokenBucket(config.dialing.calls_per_second)
        self.node = node_name(config)
        self.lease = self._lease()
        self._flag_read_at = float("-inf")
        self._flag_paused = False
        self.last_round: float | None = None  # monotonic time of the last start_due (/readyz)

    # ---- one call -----------------------------------------------------------------------
    def _plan(self, surveys: list[DueSurvey]) -> CallPlan:
        first = surveys[0]
        return CallPlan(
            dial_string=self.settings.dial_prefix + first.phone.lstrip("+"),
            requests=tuple(
                RequestInfo(sv.id, sv.request_number, sv.closed_on, sv.category) for sv in surveys
            ),
            language=first.language or self.settings.default_language,
        )

    def call_one(self, surveys: list[DueSurvey], attempt_ids: list[int]) -> None:
        """Place one call about ``surveys`` (the due requests of one phone, each with its
        attempt row already committed as dialing) and write its end."""
        phone = surveys[0].phone
        where = ",".join(sv.portal_request_id for sv in surveys)
        if not is_dialable(phone):  # judged at import; the stored number is checked again
            self._not_dialable(surveys, attempt_ids)
            return
        plan = self._plan(surveys)

        answered: list[datetime] = []

        def on_answer(at: datetime) -> None:
            answered.append(at)
            self.store.mark_answered(attempt_ids, at)

        def on_outcome(rec: RecordOutcome, answered_at: datetime | None) -> None:
            self._on_outcome(rec, phone, answered_at)

        attempt_of = dict(zip((sv.id for sv in surveys), attempt_ids, strict=True))

        def on_comment(survey_id: str, recording: Recording | None) -> None:
            self._keep_comment(survey_id, attempt_of.get(survey_id), recording)

        try:
            report = run_call(self.phone, plan, self.prompts, self.settings.runner, self.clock,
                              on_outcome, on_answer, on_comment)  # fmt: skip
        except SipError as exc:
            log.error("request %s: could not dial: %s", where, exc)
            report = CallReport(call_id=None, final_reason=str(exc), ended_at=self.clock.now())
        except Exception:
            # A bug of ours must not lose the attempt. Before the answer it is closed as failed
            # and retried; after it, it is an answered call (it counts, one a day).
            log.exception("request %s: call crashed", where)
            report = CallReport(
                call_id=None,
                final_reason="internal error",
                ended_at=self.clock.now(),
                answered_at=answered[0] if answered else None,
            )
        self._settle(surveys, attempt_ids, report)

    # ---- the loop -----------------------------------------------------------------------
    def _reap(self) -> int:
        with self._lock:
            self._active = {f for f in self._active if not f.done()}
            return len(self._active)

    def _done(self, fut: Future[None]) -> None:
        self._wake.set()

    def start_due(self, now: datetime, local_date: date | None = None) -> int:
        """Start calls for due surveys on free channels; returns how many were started.

        Nothing starts while paused (``ivr-rating pause``, any node), outside the call windows,
        or when a call could not end before its window closes. Starts are paced by
        ``dialing.calls_per_second``; surveys of one phone go into one call."""
        self.last_round = self.clock.monotonic()
        self._live_check()
        if self.paused.is_set() or self._paused_flag(now) or not self._can_dial():
            return 0
        max_call = timedelta(seconds=self.settings.runner.max_call_s)
        if not can_start_call(now, self.calendar, self.config.tz, max_call):
            return 0
        free = self.settings.channels - self._reap()
        if free <= 0:
            return 0
        tokens = self.bucket.take(self.clock.monotonic(), free)
        if tokens == 0:
            return 0
        day_start = local_day_bounds(now.astimezone(self.config.tz).date(), self.config.tz)[0]
        calls = self.store.claim_due(
            now, tokens, self.node, self.lease, local_date, answered_since=day_start
        )
        self.bucket.give_back(tokens - len(calls))
        for call in calls:
            metrics.CALLS_STARTED.inc()
            fut = self._pool.submit(self.call_one, call.surveys, call.attempt_ids)
            fut.add_done_callback(self._done)
            with self._lock:
                self._active.add(fut)
        return len(calls)

    def _can_dial(self) -> bool:
        """No call (and no attempt spent) while the SIP registration is down. Its state reaches
        ``ivr-rating status`` and the console through the node's heartbeat."""
        return self.phone.registration.can_dial

    def _paused_flag(self, now: datetime) -> bool:
        """The shared pause switch, read at most once a second."""
        mono = self.clock.monotonic()
        if mono - self._flag_read_at >= 1.0:
            self._flag_read_at = mono
            self._flag_paused = self.store.get_flag("paused") == "1"
        return self._flag_paused

    def _lease(self) -> timedelta:
        """A claim outlives the longest possible call, then another node may recover it."""
        runner = self.settings.runner
        return timedelta(seconds=runner.ring_timeout_s + runner.max_call_s + 60)

    def _live(self, file_config: Config) -> tuple[datetime | None, Config]:
        """(when the live settings were saved, the file's configuration with them over it)."""
        from ivr.core.errors import ConfigError
        from ivr.core.live_settings import apply

        doc, stamp = self.store.live_document()
        try:
            return stamp, apply(file_config, doc)
        except ConfigError as exc:
            log.error("live settings ignored, the file's values apply: %s", exc)
            return stamp, file_config

    def _live_check(self) -> None:
        """Every 2 s: settings saved in the console (or put back to the file's) apply here."""
        mono = self.clock.monotonic()
        if mono - self._live_read_at < LIVE_CHECK_S:
            return
        self._live_read_at = mono
        _, stamp = self.store.live_document()
        if stamp != self._live_stamp:
            log.info("live campaign settings changed in the console: applying them")
            self.reload(self.file_config)

    def reload(self, config: Config) -> None:
        """Apply a new configuration at once: windows, calendar, pacing, channels, retries,
        ring and input timeouts (calls in progress finish as they started), with the live
        settings saved in the console over it. What the running process was built from (SIP
        account, database, portal, node, prompts, the import schedule) needs a restart; a
        change there is logged, not applied."""
        self.file_config = config
        self._live_stamp, config = self._live(config)
        kept = [name for name in ("sip", "database", "portal", "node", "prompts", "schedule")
                if getattr(config, name) != getattr(self.config, name)]  # fmt: skip
        self.config = config
        self.settings = DialerSettings.from_config(config)
        self.lease = self._lease()
        self.calendar = CallCalendar.from_config(config)
        self.bucket = TokenBucket(config.dialing.calls_per_second)
        self._wake.set()  # more channels may be free now
        log.info(
            "configuration reloaded: call windows, pacing and %d channel(s) updated",
            self.settings.channels,
        )
        if kept:
            log.warning("changed but applied only after a restart: %s", ", ".join(kept))

    def active_calls(self) -> int:
        return self._reap()

    def wake(self) -> None:
        """End the current ``wait`` now (a stop was requested)."""
        self._wake.set()

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
        opening = next_opening(max(now, due), self.calendar, self.config.tz, max_call)
        target = opening or due
        return min(max((target - now).total_seconds(), 0.0), 30.0)

    def drain(self, timeout: float | None = None) -> None:
        """Let the calls in progress finish (used on shutdown)."""
        self._pool.shutdown(wait=True, cancel_futures=False)

    def __enter__(self) -> Dialer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drain()


def node_name(config: Config) -> str:
    """This runner's name in claims: ``node.name``, else ``<host>-<pid>``, unique per process
    (``night`` and ``run`` on one host never take each other's calls for their own). A runner
    holds its name while it lives (``storage.locks.node_presence``)."""
    return config.node.name or f"{socket.gethostname()}-{os.getpid()}"


def recover_after_restart(store: Store, config: Config, now: datetime) -> None:
    """On start: the claims of this node's name and of every node that is no longer live (no
    process holds its presence lock: it crashed) are taken back at once. Their attempts left
    ``dialing`` are closed as ``interrupted`` (they count; not redialled before the no-answer
    retry time, and one cut after its 200 OK not before the next day's window), and the
    ratings they were posting are due again. Live nodes' calls are left alone."""
    from storage.locks import node_is_live

    node = node_name(config)
    dead = sorted(n for n in store.claiming_nodes() - {node} if not node_is_live(store.engine, n))
    recovered = store.recover_interrupted(
        now,
        now + config.dialing.ladder(Disposition.NO_ANSWER)[0],
        nodes=[node, *dead],
        max_attempts=config.dialing.max_attempts,
        answered_retry_at=next_day_opening(config, now),
    )
    if recovered:
        log.warning(
            "%d attempt(s) interrupted by an earlier crash closed as interrupted", recovered
        )
    released = sum(store.release_node_deliveries(n, now) for n in [node, *dead])
    released += sum(store.release_node_comments(n, now) for n in [node, *dead])
    if released:
        log.warning("%d rating(s) claimed before an earlier crash are due again", released)


def next_day_opening(config: Config, now: datetime) -> datetime:
    """The first moment a call may start tomorrow (local), or tomorrow's midnight if there is
    no window in the next days: a number answered today is not called again today."""
    tomorrow = now.astimezone(config.tz).date() + timedelta(days=1)
    midnight = local_day_bounds(tomorrow, config.tz)[0]
    max_call = timedelta(seconds=config.dialing.max_call_s)
    return next_opening(midnight, CallCalendar.from_config(config), config.tz, max_call) or midnight


def describe_next_opening(config: Config, now: datetime) -> str:
    max_call = timedelta(seconds=config.dialing.max_call_s)
    opening = next_opening(now, CallCalendar.from_config(config), config.tz, max_call)
    if opening is None:
        return "no call window in the next 8 days"
    return format_local(opening, config.tz)
