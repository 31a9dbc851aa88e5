"""Benchmark: wall time of a 20-request night against the local peers, and what bounds it.

    .venv/bin/python bench/night.py [--channels 4 8] [--requests 20]

For each channel count it runs a fresh night (Kamailio strict, SIPp citizens, portal emulator,
``ivr-rating night`` as its own process) and prints: wall time; the opening prompt's length;
answered-call time and ring time from the database; and the lower bound those imply
(channel-time / channels, and the retry delay for citizens who need a second call), with the
measured / bound ratio. Compare runs as ratios: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's lab/

from ivr.core.config import load_config, parse_duration  # noqa: E402
from lab.night_lab import Citizen, LabSettings, NightLab  # noqa: E402
from lab.readback import attempts_of  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.store import Store  # noqa: E402

# A realistic mix: most answer and press a key, some are silent, busy or away.
MIX = (
    ["press:1"] * 8
    + ["press:2"] * 5
    + ["silent"] * 2
    + ["busy"] * 2
    + ["no_answer"] * 2
    + ["hangup:3000"]
)


def citizens(n: int) -> list[Citizen]:
    return [Citizen(f"+37529{2000000 + i:07d}", MIX[i % len(MIX)]) for i in range(n)]


def run_once(workdir: Path, n: int, channels: int) -> dict[str, float]:
    settings = LabSettings(channels=channels)
    day = date(2026, 11, 26)
    with NightLab(workdir, day, citizens(n), settings=settings, with_bad_items=False) as lab:
        t0 = time.monotonic()
        result = lab.cli("night", "--date", day.isoformat())
        wall = time.monotonic() - t0
        assert result.returncode == 0, result.stderr[-2000:]
        assert len(lab.portal.ratings) == n
        config = load_config(lab.config_path, env=lab.env())
        store = Store(make_engine(config.database))
        answered, rings, calls = [], [], 0
        for item in lab.items:
            for a in attempts_of(store, item["id"]):
                calls += 1
                if a.answered_at is not None and a.ended_at is not None:
                    answered.append((a.ended_at - a.answered_at).total_seconds())
                    rings.append((a.answered_at - a.started_at).total_seconds())
                elif a.ended_at is not None:
                    rings.append((a.ended_at - a.started_at).total_seconds())
        store.engine.dispose()
    from ivr.entry.app import make_prompts

    prompts = make_prompts(config)
    opening = (
        len(prompts.render("ru", ["greeting", "about_request", "number:1000001", "question"]))
        / 8000
    )
    channel_time = sum(answered) + sum(rings)
    retry = parse_duration(settings.retry_delay).total_seconds()
    # Lower bound: all channel-time spread over the channels, a retried citizen's two calls
    # plus the retry delay, or the single longest call, whichever is longest.
    longest_ring = settings.ring_timeout_s
    bound = max(channel_time / channels, 2 * longest_ring + retry, max(answered))
    return {
        "wall_s": wall,
        "calls": calls,
        "opening_prompt_s": opening,
        "answered_call_s_median": statistics.median(answered),
        "answered_call_s_max": max(answered),
        "ring_s_total": sum(rings),
        "channel_time_s": channel_time,
        "lower_bound_s": bound,
        "wall_over_bound": wall / bound,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--channels", type=int, nargs="+", default=[4, 8])
    p.add_argument("--requests", type=int, default=20)
    args = p.parse_args()
    results = {}
    for ch in args.channels:
        with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
            results[ch] = run_once(Path(tmp), args.requests, ch)
        r = results[ch]
        print(f"{args.requests}-request night, {ch} channels:")
        for k, v in r.items():
            print(f"  {k:<24} {v:8.2f}")
    if len(results) > 1:
        base = args.channels[0]
        for ch in args.channels[1:]:
            ratio = results[base]["wall_s"] / results[ch]["wall_s"]
            print(f"speed-up {ch} vs {base} channels: {ratio:.2f}x")
    print(
        f"(retry delay {LabSettings().retry_delay}, ring timeout {LabSettings().ring_timeout_s}"
        f" s, input timeout {LabSettings().input_timeout_s} s, max repeats "
        f"{LabSettings().max_repeats})"
    )


if __name__ == "__main__":
    main()
