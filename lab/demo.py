"""The README's first command: a whole night against real local peers.

    python -m lab.demo [--date 2026-11-26] [--workdir DIR] [--keep]

Starts Kamailio (strict: digest auth on REGISTER and INVITE), SIPp and baresip citizens
(press 1, press 2, press nothing, busy, no answer, decline, hang up early, press 2 and say
what is wrong after the tone) and a portal
emulator with a dozen closed requests (plus a few bad rows) on 127.0.0.1, runs
``ivr-rating night`` on SQLite, prints its summary, the report and what the portal received,
then stops the peers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from lab.night_lab import NightLab, check_lab_day, lab_day, opening_seconds
from lab.portal_contract import wav_duration_s


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr-rating-demo", description=__doc__.splitlines()[0])
    p.add_argument(
        "--date",
        type=date.fromisoformat,
        default=None,
        help="local day the requests closed (default: yesterday in Europe/Minsk)",
    )
    p.add_argument("--workdir", type=Path, default=None, help="keep everything here")
    p.add_argument("--keep", action="store_true", help="do not delete the work folder")
    p.add_argument(
        "--console",
        action="store_true",
        help="then leave the web console running on the night's data (Ctrl-C stops it)",
    )
    p.add_argument("--listen", default="127.0.0.1:8080", help="the console's HOST:PORT")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    day = args.date or lab_day()
    try:
        check_lab_day(day)
    except ValueError as exc:
        p.error(str(exc))

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ivr-demo-"))
    lab = NightLab(workdir, day)
    print(f"demo: starting local peers in {workdir} ...", flush=True)
    with lab:
        returncode = _night(lab, day)
    print("demo: peers stopped")
    if args.console:
        run_console(lab, args.listen)
    if not (args.keep or args.workdir):
        shutil.rmtree(workdir, ignore_errors=True)
    return returncode


def _night(lab: NightLab, day: date) -> int:
    """The night, its summary and report, and what the peers received; its exit status."""
    print(
        f"demo: Kamailio on 127.0.0.1:{lab.kamailio_port}, "
        f"{len(lab.sipps)} SIPp and {len(lab.baresips)} baresip citizen(s), "
        f"portal emulator at {lab.portal.base_url} with {len(lab.items)} closed requests",
        flush=True,
    )
    lab.arm_baresips(opening_seconds(lab))
    print(f"demo: ivr-rating --config {lab.config_path} night --date {day}", flush=True)
    started = time.monotonic()
    night = lab.cli("night", "--date", day.isoformat())
    elapsed = time.monotonic() - started
    sys.stderr.write(night.stderr)
    print(night.stdout)
    print(f"demo: the night took {elapsed:.1f} s and exited {night.returncode}")
    report = lab.cli("report", "--date", day.isoformat())
    print(report.stdout)
    _print_received(lab)
    return night.returncode


SHOWN = ("outcome", "reason", "digit", "attempts", "return_for_rework", "comment_expected")


def _print_received(lab: NightLab) -> None:
    print("demo: what the portal received:")
    for request_id, _key, body in lab.portal.ratings:
        shown = {k: body[k] for k in SHOWN}
        print(f"  {request_id}: {json.dumps(shown, ensure_ascii=False)}")
    for (request_id, survey_id), audio in lab.portal.comments.items():
        print(
            f"demo: the portal received the spoken comment of {request_id}: "
            f"{wav_duration_s(audio):.2f} s, sha256 {hashlib.sha256(audio).hexdigest()}"
        )
        kept = sorted(lab.workdir.glob(f"comments/*/{survey_id}.wav"))
        for path in kept:
            print(f"demo: the WAV is kept at {path}")
    for user, b in lab.baresips.items():
        for wav in b.recordings():
            print(f"demo: baresip citizen {user} recorded what it heard: {wav}")


DEMO_USERS = (("vera", "viewer"), ("oleg", "operator"), ("anna", "admin"))


def run_console(lab: NightLab, listen: str) -> None:
    """A demo user for each role, then ``ivr-rating console`` in the foreground until Ctrl-C."""
    import secrets
    import signal
    import subprocess

    base = [sys.executable, "-m", "ivr.entry.cli", "--config", str(lab.config_path)]
    for name, role in DEMO_USERS:
        subprocess.run([*base, "user", "add", name, "--role", role, "--password-stdin"],
                       input=f"{name}-{role}-demo\n", text=True, env=lab.env(),
                       capture_output=True, check=False)  # fmt: skip
    env = {**lab.env(), "IVR_CONSOLE_SECRET": secrets.token_urlsafe(32)}
    console = subprocess.Popen([*base, "console", "--listen", listen], env=env)
    print(f"demo: the console is at http://{listen}/ (Ctrl-C stops it); sign in as:")
    for name, role in DEMO_USERS:
        print(f"  {role:<9} {name} / {name}-{role}-demo")
    sys.stdout.flush()
    try:
        console.wait()
    except KeyboardInterrupt:
        console.send_signal(signal.SIGINT)
        console.wait(timeout=30)
    print("demo: console stopped")


if __name__ == "__main__":
    sys.exit(main())
