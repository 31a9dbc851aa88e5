"""Where the product's CPU goes with N calls up: per-thread CPU and a profile of the media loop.

    .venv/bin/python bench/media_profile.py --calls 100 [--hold 15] [--cprofile]

Runs ``lab.load.run_load`` (as ``bench/capacity.py`` does, without the capture) and,
over the window when all calls are up, reports each kind of thread's CPU (from
/proc/self/task, so no profiler overhead) as % of one core: the media loop, the channel
threads (call runners), the SIP receiver and its timers. With ``--cprofile`` the media
thread runs under cProfile (which slows it) and its top functions are printed.

The loop is instrumented in this process, so this runs the engine in-process
(``IVR_MEDIA_IN_PROCESS=1``, the design before the media process): it profiles the loop's
own work (CPU per packet, a tick's work), which is the same code in the media process;
``bench/capacity.py`` measures the product as it runs, with the media process.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's lab/
os.environ.setdefault("IVR_MEDIA_IN_PROCESS", "1")  # the loop instrumented here, in-process

from ivr.sip import media  # noqa: E402
from lab.load import run_load  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _thread_cpu() -> dict[int, float]:
    """CPU seconds per thread id; user time alone under the id's negative."""
    out: dict[int, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / TICK
        out[-int(tid)] = int(fields[11]) / TICK
    return out


def _kind(name: str) -> str:
    for prefix in ("channel", "ivr media", "SIP Receive", "ivr SIP timers", "MainThread"):
        if name.startswith(prefix):
            return prefix
    return "other"


class Sampler(threading.Thread):
    """Per-thread CPU every second, with each thread's name."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="profile sampler")
        self.samples: list[tuple[float, dict[int, float]]] = []
        self.names: dict[int, str] = {}
        self.running = True

    def run(self) -> None:
        while self.running:
            for t in threading.enumerate():
                if t.native_id is not None:
                    self.names[t.native_id] = t.name
            self.samples.append((time.time(), _thread_cpu()))
            time.sleep(1.0)

    def window(self, start: float, end: float) -> dict[str, float]:
        first = min(self.samples, key=lambda s: abs(s[0] - start))
        last = min(self.samples, key=lambda s: abs(s[0] - end))
        span = max(last[0] - first[0], 1e-9)
        by_kind: dict[str, float] = {}
        for tid, cpu in last[1].items():
            kind = _kind(self.names.get(abs(tid), "?")) + (" (user)" if tid < 0 else "")
            by_kind[kind] = by_kind.get(kind, 0.0) + 100 * (cpu - first[1].get(tid, 0.0)) / span
        return by_kind


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--hold", type=float, default=15.0)
    p.add_argument("--cprofile", action="store_true")
    p.add_argument("--gc-freeze", action="store_true", help="gc.freeze() before the calls")
    p.add_argument("--switch-interval", type=float, help="sys.setswitchinterval (s)")
    p.add_argument("--gc-off", action="store_true", help="gc.disable() (diagnosis only)")
    p.add_argument("--rtp-base", type=int, default=16000, help="first RTP port of our calls")
    args = p.parse_args()
    profile = cProfile.Profile()
    if args.cprofile:
        real_run = media.MediaEngine._run

        def profiled(self: Any) -> None:
            profile.runcall(real_run, self)

        media.MediaEngine._run = profiled  # type: ignore[method-assign]
    lateness: list[float] = []
    real_tick = media.MediaEngine._tick

    durations: list[float] = []
    walls: list[float] = []

    def timed_tick(self: Any, now: float, *rest: Any) -> None:
        lateness.append(now)
        walls.append(time.time())
        real_tick(self, now, *rest)
        durations.append(self._monotonic() - now)

    media.MediaEngine._tick = timed_tick  # type: ignore[method-assign]
    pauses: list[float] = []
    started: list[float] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(on_gc)
    if args.gc_freeze:
        gc.freeze()
    if args.gc_off:
        gc.disable()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    sampler = Sampler()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="ivr-profile-") as tmp:
        result = run_load(Path(tmp) / "load", args.calls, args.hold, rtp_base=args.rtp_base)
    sampler.running = False
    with open("/proc/loadavg") as f:
        load1 = f.read().split()[0]
    cpu = sampler.window(result.all_up_at, result.all_up_at + result.window_s)
    print(f"calls {args.calls}, load {load1}, window {result.window_s:.1f} s, "
          f"process CPU {100 * result.cpu_s / result.window_s:.1f} %, "
          f"dropped {len(result.dropped)}, outcomes {len(result.outcomes)}")  # fmt: skip
    for kind, pct in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<16} {pct:6.1f} % of a core")
    # a ratio that survives a busy machine: the loop's CPU per packet (sent + received)
    per_packet = cpu.get("ivr media", 0.0) / 100 / (args.calls * 100) * 1e6
    user = cpu.get("ivr media (user)", 0.0) / 100 / (args.calls * 100) * 1e6
    print(
        f"  media loop: {per_packet:.1f} us CPU per packet ({user:.1f} in Python and C, the rest"
        " in the kernel; 50 sent + 50 echoed per call and second)"
    )
    wakes, took = np.array(lateness), np.array(durations[: len(lateness)]) * 1000
    wall = np.array(walls[: len(wakes)])
    keep = (wall >= result.all_up_at) & (wall <= result.all_up_at + result.window_s)
    gaps = np.diff(wakes[keep]) * 1000
    print(
        f"  between ticks (ideal {media.SLOT * 1000:.0f} ms): p50 {np.percentile(gaps, 50):.2f}"
        f" p99 {np.percentile(gaps, 99):.2f} max {gaps.max():.1f} ms; a tick's work: p50 "
        f"{np.percentile(took[keep], 50):.2f} p99 {np.percentile(took[keep], 99):.2f} ms"
    )
    if pauses:
        print(
            f"  gc: {len(pauses)} collections, max {max(pauses):.1f} ms, "
            f"p99 {np.percentile(pauses, 99):.2f} ms"
        )
    if args.cprofile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()
