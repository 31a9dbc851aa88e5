"""Benchmark: channel occupancy of the dialer, and two nodes versus one.

    .venv/bin/python bench/occupancy.py [--surveys 200] [--channels 10]

SIPp citizens answer after a uniformly random 2-8 s and press 1 a second later. For one node
(``ivr-rating run``, PostgreSQL) it prints the fraction of channel-time spent in calls while
work was pending (goal above 0.95) and the gap between a channel freeing and its next INVITE
(median, p99); then the same work on two nodes, and completed calls per minute with the ratio.
Timestamps come from the database (an attempt is committed just before its INVITE).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's lab/

from ivr.core.clock import SYSTEM_CLOCK  # noqa: E402
from ivr.core.windows import yesterday  # noqa: E402
from lab.night_lab import Citizen, LabSettings, NightLab  # noqa: E402
from lab.peer_process import find_free_udp_port, require_binary  # noqa: E402
from lab.pg import temporary_schema  # noqa: E402
from lab.readback import attempts_of  # noqa: E402
from lab.sipp_peer import SippCitizen  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.store import Store  # noqa: E402

RANDOM_RING = '<pause distribution="uniform" min="2000" max="8000"/>'


def random_ring(sipp: SippCitizen) -> subprocess.Popen[bytes]:
    """Restart the citizen's SIPp (same port, same registrations) ringing 2-8 s at random."""
    sipp.__exit__(None, None, None)
    scenario = sipp.scenario_path.read_text()
    assert '<pause milliseconds="200"/>' in scenario
    path = sipp.scenario_path.with_name("bench-random-ring.xml")
    path.write_text(scenario.replace('<pause milliseconds="200"/>', RANDOM_RING, 1))
    argv = [require_binary("sipp"), "-sf", str(path), "-i", "127.0.0.1",
            "-p", str(sipp.sip_port), "-mi", "127.0.0.1", "-mp", str(find_free_udp_port()),
            "-nostdin", "-aa"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_nodes(workdir: Path, n_surveys: int, channels: int, nodes: int) -> dict[str, float]:
    day = yesterday(SYSTEM_CLOCK.now(), ZoneInfo("Europe/Minsk"))
    citizens = [Citizen(f"+375295{i:06d}", "press:1") for i in range(n_surveys)]
    with temporary_schema(prefix="ivr_bench") as db, NightLab(
        workdir, day, citizens, settings=LabSettings(channels=channels), with_bad_items=False,
        overrides={"database": db, "node": {"name": "node-0"},
                   "dialing": {"calls_per_second": 20}},
    ) as lab:  # fmt: skip
        sipp = random_ring(lab.sipps[0])
        configs = [lab.config_path] + [
            lab.config_variant(f"n{i}", {"node": {"name": f"node-{i}"},
                                         "sip": {"username": f"dialer-{i}",
                                                 "sip_port": find_free_udp_port(),
                                                 "rtp_ports": f"{33000 + 1000 * i}-"
                                                              f"{33999 + 1000 * i}"}})
            for i in range(1, nodes)
        ]  # fmt: skip
        t0 = time.monotonic()
        procs = [lab.popen("run", config=c) for c in configs]
        try:
            while len(lab.portal.ratings) < n_surveys:
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError("a node died; see runner-*.log in " + str(workdir))
                time.sleep(0.2)
            wall = time.monotonic() - t0
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=180)
            sipp.terminate()
            sipp.wait(timeout=10)
        store = Store(make_engine(db))
        spans: list[tuple[datetime, datetime]] = []
        for item in lab.items:
            for a in attempts_of(store, item["id"]):
                assert a.ended_at is not None
                spans.append((a.started_at, a.ended_at))
        store.engine.dispose()
    return measure(spans, channels * nodes, wall, n_surveys)


def measure(
    spans: list[tuple[datetime, datetime]], channels: int, wall: float, n: int
) -> dict[str, float]:
    starts = sorted(s for s, _ in spans)
    first, last_start = starts[0], starts[-1]  # work was pending until the last start
    window = (last_start - first).total_seconds()
    busy = sum(max(0.0, (min(e, last_start) - max(s, first)).total_seconds()) for s, e in spans)
    gaps = []
    for _, end in sorted(spans, key=lambda x: x[1]):
        if end >= last_start:
            continue
        nxt = next(s for s in starts if s >= end)
        gaps.append((nxt - end).total_seconds() * 1000)
    gaps.sort()
    return {
        "calls": len(spans),
        "wall_s": wall,
        "calls_per_minute": n / wall * 60,
        "occupancy_while_pending": busy / (channels * window) if window else 0.0,
        "free_to_invite_ms_median": statistics.median(gaps) if gaps else 0.0,
        "free_to_invite_ms_p99": gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))] if gaps else 0.0,
        "free_to_invite_ms_max": gaps[-1] if gaps else 0.0,
        "free_to_invite_over_200ms": float(sum(g > 200 for g in gaps)),
        "free_channel_events": float(len(gaps)),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--surveys", type=int, default=200)
    p.add_argument("--channels", type=int, default=10)
    args = p.parse_args()
    results = {}
    for nodes in (1, 2):
        with tempfile.TemporaryDirectory(prefix="ivr-occupancy-") as tmp:
            results[nodes] = run_nodes(Path(tmp), args.surveys, args.channels, nodes)
        print(f"{args.surveys} surveys, {nodes} node(s) x {args.channels} channels:", flush=True)
        for k, v in results[nodes].items():
            print(f"  {k:<26} {v:10.3f}", flush=True)
    ratio = results[2]["calls_per_minute"] / results[1]["calls_per_minute"]
    print(f"two nodes vs one: {ratio:.2f}x completed calls per minute")


if __name__ == "__main__":
    main()
