"""Benchmark: time from a key press, as the citizen's phone sends it, to the outcome committed
in the database; median and p99 over N calls (default 100).

    .venv/bin/python bench/key_latency.py [--calls 100] [--parallel 10] [--path rfc4733|info|inband]

Peers: strict Kamailio and one SIPp citizen that answers and, ``--delay-ms`` after it receives
our ACK, sends '1' (an RFC 4733 event, a SIP INFO, or an 80 ms tone in its audio). The press
time is the ACK's arrival in SIPp's message trace plus that delay (plus 200 ms for ``--path
inband``, where the tone starts 200 ms into the capture; SIPp timestamps with the same wall
clock); the commit time is the survey's ``completed_at`` (written in the outcome's
transaction, SQLite). The opening prompt is longer than the delay: every key is a barge-in.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.campaign.call_runner import CallPlan, RunnerSettings, run_call  # noqa: E402
from ivr.core.call_events import RecordOutcome  # noqa: E402
from ivr.core.call_script import FlowSettings, RequestInfo  # noqa: E402
from ivr.core.clock import SYSTEM_CLOCK  # noqa: E402
from ivr.sip.api import SipSettings  # noqa: E402
from ivr.sip.pyvoip_adapter import PyVoipPhone  # noqa: E402
from lab.kamailio_peer import Kamailio  # noqa: E402
from lab.peer_process import find_free_udp_port  # noqa: E402
from lab.sipp_peer import SippCitizen  # noqa: E402
from prompts.library import PromptLibrary  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402
from storage.store import NewSurvey, Store  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NUMBER = "375291300001"
_ENTRY = re.compile(
    r"-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n(?:UDP|TCP) message received \[\d+\] "
    r"bytes :\n\n(ACK [^\n]*\n(?:[^\n]+\n)*)"
)


def ack_times(trace: str) -> dict[str, datetime]:
    """Call-ID -> when SIPp received our ACK (first copy)."""
    out: dict[str, datetime] = {}
    for stamp, message in _ENTRY.findall(trace):
        call_id = re.search(r"(?im)^call-id:\s*(\S+)", message)
        if call_id and call_id.group(1) not in out:
            out[call_id.group(1)] = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--delay-ms", type=int, default=2000)
    ap.add_argument("--path", choices=["rfc4733", "info", "inband"], default="rfc4733")
    args = ap.parse_args()
    kind = {"rfc4733": "press", "info": "info", "inband": "inband"}[args.path]
    behaviour = f"{kind}:1:{args.delay_ms}"
    # the in-band citizen's capture starts with 200 ms of silence before the 80 ms tone
    lead_ms = 200 if args.path == "inband" else 0
    work = Path(tempfile.mkdtemp(prefix="ivr-keylat-"))
    engine = make_engine(f"sqlite:///{work / 'bench.db'}")
    upgrade(engine)
    store = Store(engine)
    now = datetime.now(UTC)
    for i in range(args.calls):
        store.add_survey(
            NewSurvey(f"R{i}", f"{1000 + i}", now, date.today(), NUMBER, "+" + NUMBER, "ru", None),
            now,
        )
    ids = [d.id for d in store.due_surveys(now + timedelta(days=1), args.calls)]
    prompts = PromptLibrary(ROOT / "prompts", work / "cache", ["ru", "be"])
    settings = RunnerSettings(ring_timeout_s=15, max_call_s=60, flow=FlowSettings(5, 0))
    call_ids: dict[str, str] = {}
    lock = threading.Lock()
    with (
        Kamailio(work, find_free_udp_port()) as kam,
        SippCitizen(work, behaviour, [NUMBER], kam.port) as citizen,
    ):
        phone = PyVoipPhone(
            SipSettings(
                "127.0.0.1",
                kam.port,
                "dialer",
                "secret",
                "127.0.0.1",
                find_free_udp_port(),
                30000,
                30999,
            )  # fmt: skip
        )
        phone.start()

        def one(survey_id: str, i: int) -> None:
            plan = CallPlan(NUMBER, (RequestInfo(survey_id, f"{1000 + i}"),), "ru")

            def sink(rec: RecordOutcome, answered_at: datetime | None) -> None:
                store.record_outcome(
                    rec.survey_id, rec.outcome.value, rec.key, rec.reason, answered_at,
                    SYSTEM_CLOCK.now(),
                )  # fmt: skip

            report = run_call(phone, plan, prompts, settings, SYSTEM_CLOCK, sink)
            with lock:
                call_ids[survey_id] = report.call_id or ""

        try:
            with ThreadPoolExecutor(args.parallel) as pool:
                list(pool.map(one, ids, range(len(ids))))
        finally:
            phone.stop()
        trace = citizen.messages()
    acks = ack_times(trace)
    from sqlalchemy import select

    from storage.models import Survey

    with engine.connect() as conn:
        rows = conn.execute(select(Survey.id, Survey.outcome, Survey.completed_at)).all()
    latencies = []
    outcomes: dict[str, int] = {}
    for sid, outcome, completed in rows:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        ack = acks.get(call_ids.get(sid, ""))
        if outcome == "satisfied" and ack is not None and completed is not None:
            pressed = ack + timedelta(milliseconds=args.delay_ms + lead_ms)
            latencies.append((completed.astimezone(UTC) - pressed).total_seconds() * 1000)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * len(latencies))) - 1)]
    sys.stdout.write(
        f"{args.path}: {len(rows)} calls, {args.parallel} at a time; outcomes {outcomes}\n"
        f"key press -> outcome committed: median {statistics.median(latencies):.1f} ms, "
        f"p99 {p99:.1f} ms, min {latencies[0]:.1f} ms, max {latencies[-1]:.1f} ms "
        f"(n={len(latencies)})\n"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
