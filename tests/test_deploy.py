"""The systemd units in deploy/: ``systemd-analyze verify`` accepts them without a warning
(where systemd-analyze exists), and they carry the hardening and the commands the README
promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = {"ivr-rating.service": " run", "ivr-rating-console.service": " console "}
INSTALLED = "/opt/ivr-rating/.venv/bin/ivr-rating"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of (key, value) pairs in order; a key may repeat (SystemCallFilter)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None and "=" in line, f"line {n}: {raw!r}"
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return sections


def settings(name: str) -> dict[str, str]:
    service = parse_unit((DEPLOY / name).read_text())["Service"]
    return {k: v for k, v in service}


@pytest.mark.parametrize("name", sorted(UNITS), ids=sorted(UNITS))
def test_unit_is_hardened_and_runs_its_command(name: str) -> None:
    sections = parse_unit((DEPLOY / name).read_text())
    assert set(sections) == {"Unit", "Service", "Install"}
    s = settings(name)
    assert s["User"] == "ivr-rating" and s["Group"] == "ivr-rating"
    for key, value in {
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "StateDirectory": "ivr-rating",
        "WorkingDirectory": "/var/lib/ivr-rating",
        "EnvironmentFile": "/etc/ivr-rating/ivr-rating.env",
    }.items():
        assert s.get(key) == value, f"{name}: {key}={s.get(key)!r}"
    assert s["ExecStart"].startswith(INSTALLED + " --config /etc/ivr-rating/config.yaml")
    assert UNITS[name] in s["ExecStart"] + " "
    # No secret in a unit: they come from the EnvironmentFile.
    assert "Environment" not in s
    assert dict(sections["Install"])["WantedBy"] == "multi-user.target"


def test_runner_unit_stops_gently_and_reloads_with_hup() -> None:
    s = settings("ivr-rating.service")
    assert s["KillSignal"] == "SIGTERM"
    assert int(s["TimeoutStopSec"]) >= 180  # calls in progress end (max_call_s) first
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_console_listens_on_loopback_behind_the_proxy() -> None:
    s = settings("ivr-rating-console.service")
    assert "--listen 127.0.0.1:" in s["ExecStart"] and "--secure-cookies" in s["ExecStart"]


def test_env_example_names_every_secret_without_values() -> None:
    lines = [
        line
        for line in (DEPLOY / "ivr-rating.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines == ["PORTAL_TOKEN=", "SIP_PASSWORD=", "IVR_CONSOLE_SECRET="]


# systemd-analyze (scripts/setup.sh installs it): a missing one fails the run, never skips.
@pytest.mark.tools
@pytest.mark.parametrize("name", sorted(UNITS), ids=sorted(UNITS))
def test_systemd_analyze_verify_accepts_the_unit(name: str, tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's console script.
    script = Path(sys.executable).with_name("ivr-rating")
    assert script.exists(), script
    unit = tmp_path / name
    unit.write_text((DEPLOY / name).read_text().replace(INSTALLED, str(script)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, report
    # Warnings (an unknown key, a bad value) do not fail verify: none is allowed either.
    assert name not in report, report
