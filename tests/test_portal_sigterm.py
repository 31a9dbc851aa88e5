"""SIGTERM ends an import within seconds, through the command line (``night`` and ``run`` as
processes on the real clock) against a portal that trickles its first page (the emulator's
hostile hooks): the stop event, not the request deadline, ends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.night_lab import lab_day
from lab.peer_process import find_free_udp_port
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items
from tests.helpers import wait_until

TOKEN = "test-token"
ROOT = Path(__file__).resolve().parents[1]
SLACK_S = 10.0  # a loaded machine: every wall-clock bound is asserted with this much margin


@pytest.fixture
def portal() -> Iterator[PortalEmulator]:
    items = make_items(
        lab_day(), "Europe/Minsk", [f"+37529{n:07d}" for n in range(2000001, 2000011)]
    )
    with PortalEmulator(items, token=TOKEN) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def prompt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prompt-cache")


def write_config(tmp_path: Path, portal: PortalEmulator, prompt_cache: Path) -> Path:
    config = {
        "database": f"sqlite:///{tmp_path / 'ivr.sqlite'}",
        "portal": {
            "base_url": portal.base_url,
            "token": TOKEN,
            "page_size": 4,
            "request_deadline_s": 120,  # the stop, not the deadline, must end the import
            "retry_budget_s": 0,
            "lookback_days": 1,
        },
        "sip": {
            "server": "127.0.0.1",
            "port": 9,
            "username": "dialer",
            "password": "p",
            "local_ip": "127.0.0.1",
            "sip_port": find_free_udp_port(),
            "register": False,
        },
        "prompts": {"cache_dir": str(prompt_cache), "languages": ["ru"]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cli(config: Path, *args: str, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ivr.entry.cli", "--config", str(config), *args],
            stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip


def trickled_get_in_progress(portal: PortalEmulator) -> bool:
    return any(method == "GET" for method, _ in portal.requests_seen)


def test_sigterm_ends_night_in_the_middle_of_a_trickled_page(
    tmp_path: Path, portal: PortalEmulator, prompt_cache: Path
) -> None:
    config = write_config(tmp_path, portal, prompt_cache)
    portal.trickle_next(1, byte_every_s=0.5)  # the first page would take many minutes
    log = tmp_path / "night.log"
    proc = cli(config, "night", "--date", lab_day().isoformat(), log=log)
    try:
        wait_until(lambda: trickled_get_in_progress(portal), 120, "night's first page request")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=SLACK_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert proc.returncode == 3, output[-3000:]
    assert "stopped: import stopped by a signal in the middle of a page" in output
    assert "run again to import the rest" in output


def test_run_starts_while_the_catch_up_import_hangs_and_sigterm_ends_both(
    tmp_path: Path, portal: PortalEmulator, prompt_cache: Path
) -> None:
    config = write_config(tmp_path, portal, prompt_cache)  # catch-up: yesterday, lab_day()
    portal.trickle_next(1, byte_every_s=0.5)
    log = tmp_path / "run.log"
    proc = cli(config, "run", log=log)
    try:
        wait_until(lambda: trickled_get_in_progress(portal), 120, "the catch-up import's request")
        # The service is up (scheduler running, dial loop started) while the import hangs.
        wait_until(lambda: "service running" in log.read_text(), 30, "the service to start")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=SLACK_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "stopped; the day is imported later" in output
