"""Many of the product's survey calls at once against one SIPp UAS that answers every call and
echoes our RTP back like a handset (SIPp ``-rtp_echo``), nobody pressing a key.

Each call is what a dialer channel does: ``run_call`` (runner, call flow, real prompts,
``PyVoipPhone`` direct to the trunk) on its own thread, started at ``calls_per_second``. The
calls are held by a long input timeout until ``max_call_s``; the flow then says goodbye and
records its outcome. Used by ``bench/capacity.py`` (with a capture) and by the CI load test.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ivr.campaign.call_runner import CallPlan, CallReport, RunnerSettings, run_call
from ivr.core.call_events import RecordOutcome
from ivr.core.call_script import FlowSettings, RequestInfo
from ivr.core.clock import SYSTEM_CLOCK
from ivr.sip.api import EndedBy, SipSettings
from ivr.sip.media_client import MEDIA
from ivr.sip.pyvoip_adapter import PyVoipPhone
from lab.peer_process import find_free_udp_port
from lab.sipp_peer import SippCitizen
from prompts.library import PromptLibrary

PROMPTS_ROOT = Path(__file__).resolve().parent.parent / "prompts"


@dataclass
class LoadResult:
    calls: int
    reports: list[CallReport] = field(default_factory=list)
    outcomes: dict[str, RecordOutcome] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    all_up_at: float = 0.0  # wall clock (time.time) when the last call was answered
    first_end_at: float = 0.0  # wall clock when the first call ended
    cpu_s: float = 0.0  # CPU seconds of this process and its media process in the window
    media_cpu_s: float = 0.0  # of which the media process's
    window_s: float = 0.0
    rss_mb: float = 0.0  # peak resident set size in the window

    @property
    def dropped(self) -> list[CallReport]:
        """Calls that did not last until we ended them (the far end or the media gave up)."""
        return [r for r in self.reports if not r.answered or r.ended_by is not EndedBy.LOCAL_HANGUP]


def _ours() -> list[str]:
    """This process and its media process: the product's CPU and memory are both's."""
    return ["self"] if MEDIA.pid is None else ["self", str(MEDIA.pid)]


def _cpu_seconds(pids: list[str] | None = None) -> float:
    total = 0.0
    for pid in pids or _ours():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / 100.0  # utime, stime in clock ticks
    return total


def _rss_mb() -> float:
    total = 0.0
    for pid in _ours():
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def run_load(
    workdir: Path,
    calls: int,
    hold_s: float,
    calls_per_second: float = 20.0,
    rtp_base: int = 10000,  # below the ephemeral ports (32768-60999) other sockets take
    sipp_media_port: int | None = None,
) -> LoadResult:
    """``calls`` survey calls at once, each held ``hold_s`` after the last one is up."""
    workdir.mkdir(parents=True, exist_ok=True)
    prompts = PromptLibrary(PROMPTS_ROOT, workdir / "prompt-cache", ["ru"])
    prompts.render_linear16("ru", ["greeting", "about_request", "number:4071", "question"])
    ramp_s = calls / calls_per_second
    settings = RunnerSettings(
        ring_timeout_s=30,
        max_call_s=ramp_s + hold_s + 12.0,
        flow=FlowSettings(input_timeout_s=3600, max_repeats=0, offer_opt_out=False),
        closing_grace_s=10.0,
    )  # the product's poll (20 ms per call) and media timeout
    result = LoadResult(calls)
    with SippCitizen(workdir, "silent", [], media_port=sipp_media_port) as sipp:
        phone = PyVoipPhone(
            SipSettings(
                server="127.0.0.1", port=sipp.sip_port, username="dialer", password="",
                local_ip="127.0.0.1", sip_port=find_free_udp_port(), rtp_port_low=rtp_base,
                rtp_port_high=rtp_base + 2 * calls + 100, register=False,
            )
        )  # fmt: skip
        phone.start()
        caller = _Caller(phone, prompts, settings, result)
        try:
            with ThreadPoolExecutor(calls, thread_name_prefix="channel") as pool:
                for i in range(calls):
                    pool.submit(caller.one, i)
                    time.sleep(1.0 / calls_per_second)
                _wait_all_up(phone, result)
                _measure(result, hold_s)
        finally:
            phone.stop()
    return result


class _Caller:
    """One survey call of the load run, its report, outcome or error kept in ``result``."""

    def __init__(
        self, phone: PyVoipPhone, prompts: PromptLibrary, settings: RunnerSettings,
        result: LoadResult,
    ) -> None:  # fmt: skip
        self.phone, self.prompts, self.settings, self.result = phone, prompts, settings, result
        self.lock = threading.Lock()

    def sink(self, rec: RecordOutcome, at: datetime | None) -> None:
        with self.lock:
            self.result.outcomes[rec.survey_id] = rec

    def one(self, i: int) -> None:
        plan = CallPlan(f"37529{i:07d}", (RequestInfo(f"s{i}", "4071"),), "ru")
        try:
            report = run_call(
                self.phone, plan, self.prompts, self.settings, SYSTEM_CLOCK, self.sink
            )
        except Exception as exc:  # noqa: BLE001  (counted: a load run reports, not raises)
            with self.lock:
                self.result.errors.append(repr(exc))
            return
        with self.lock:
            self.result.reports.append(report)
            if not self.result.first_end_at:
                self.result.first_end_at = time.time()


def _wait_all_up(phone: PyVoipPhone, result: LoadResult) -> None:
    """Until every call is answered (the phone's calls table) or ended, 30 s at most."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if phone.answered_calls() + len(result.reports) + len(result.errors) >= result.calls:
            break
        time.sleep(0.05)
    time.sleep(1.0)
    result.all_up_at = time.time()


def _measure(result: LoadResult, hold_s: float) -> None:
    """CPU (the node's and the media process's) and peak RSS over the hold window."""
    media = _ours()[1:]
    cpu0, t0 = _cpu_seconds(), time.monotonic()
    media0 = _cpu_seconds(media) if media else 0.0
    rss = _rss_mb()
    while time.monotonic() - t0 < hold_s:  # calls end at max_call_s, later
        time.sleep(0.5)
        rss = max(rss, _rss_mb())
    result.cpu_s, result.window_s = _cpu_seconds() - cpu0, time.monotonic() - t0
    result.media_cpu_s = _cpu_seconds(media) - media0 if media else 0.0
    result.rss_mb = rss
