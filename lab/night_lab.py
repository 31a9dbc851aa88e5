"""A whole local world for one night: Kamailio (strict), SIPp and baresip citizens, a portal
emulator with that day's closed requests, and a config.yaml pointing ivr-rating at them.

Used by the demo (``python -m lab.demo``) and by the end-to-end tests. Everything listens
on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo

import yaml

from lab.baresip_peer import BaresipCitizen
from lab.kamailio_peer import Kamailio
from lab.peer_process import find_free_udp_port
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items
from lab.sipp_peer import SippCitizen

TOKEN = "demo-portal-token"
SIP_PASSWORD = "secret"  # what the lab Kamailio expects


@dataclass(frozen=True)
class Citizen:
    """A person behind a phone number and what they do when called.

    behaviour: a SippCitizen behaviour ("press:1", "press:2", "silent", "busy", "no_answer",
    "decline", "not_found", "hangup:<ms>", "inband_pcma:<key>", "info:<key>", ...),
    "speak:<pcmu|pcma>[:bye]" (presses 2, then says a sentence after the tone; "bye": hangs
    up mid-sentence) or
    "baresip:<key>" (baresip answers, records, presses <key> after hearing the whole opening
    prompt)."""

    phone: str  # as the citizen typed it in the portal
    behaviour: str
    language: str | None = None

    @property
    def user(self) -> str:
        """The SIP user the dialer calls: E.164 digits without '+'."""
        from ivr.core.intake import normalize_phone

        e164 = normalize_phone(self.phone)
        assert e164 is not None, self.phone
        return e164.lstrip("+")


# A dozen closed requests: every kind of citizen, plus the items that must not be called.
DEMO_CITIZENS: tuple[Citizen, ...] = (
    Citizen("+375 29 100-00-01", "press:1"),
    Citizen("80291000002", "press:2"),
    Citizen("8 (029) 100-00-03", "press:1", language="be"),
    Citizen("29 1000004", "silent"),
    Citizen("+375291000005", "busy"),
    Citizen("+375291000006", "no_answer"),
    Citizen("+375291000007", "decline"),
    Citizen("017 100-00-08", "press:2"),
    Citizen("+375 29 100 00 09", "baresip:1"),
    Citizen("+375291000010", "hangup:3000"),
    Citizen("+375291000011", "inband_pcma:2"),  # an A-law line; the key as tones in the audio
    Citizen("8 029 100 00 12", "info:1"),  # the key as a SIP INFO
    Citizen("+375291000013", "speak:pcmu"),  # presses 2 and says what is wrong after the tone
)


def lab_day(timezone: str = "Europe/Minsk") -> date:
    """Yesterday in ``timezone`` on the real clock: the day a real-clock night is run for.

    The product runs on the wall clock (survey deadlines, "one answered call a day"), so a lab
    night for a fixed date works only in the week it was written. Tests and the demo use this."""
    from ivr.core.clock import SYSTEM_CLOCK
    from ivr.core.windows import yesterday

    return yesterday(SYSTEM_CLOCK.now(), ZoneInfo(timezone))


def check_lab_day(day: date, timezone: str = "Europe/Minsk") -> None:
    """Refuse a lab night that the product, on the real clock, would not call.

    Surveys expire ``dialing.survey_deadline`` (3 days) after closing, so a night for a fixed
    date passes only in the week it was written, then calls nobody. This is the guard that keeps
    such a date out of the real-clock tests and the demo."""
    today = lab_day(timezone) + timedelta(days=1)
    if not today - timedelta(days=2) <= day <= today:
        raise ValueError(
            f"lab night for {day.isoformat()}: the product runs on the real clock (today is "
            f"{today.isoformat()} in {timezone}), and a survey expires 3 days after closing, so "
            "nobody would be called. Use a day from lab_day() (yesterday), or at most 2 days "
            "before today."
        )


def bad_items(day: date, tz: ZoneInfo) -> list[dict[str, Any]]:
    """Portal rows that must not be dialled (reported not_called) or not even stored."""
    noon = datetime.combine(day, datetime.min.time(), tzinfo=tz) + timedelta(hours=12)
    return [
        {
            "id": "REQ-BAD-PHONE",
            "number": "900001",
            "phone": "12345",
            "closed_at": noon.isoformat(),
        },
        {
            "id": "REQ-NO-CONSENT",
            "number": "900002",
            "phone": "+375291000090",
            "closed_at": noon.isoformat(),
            "consent_to_calls": False,
        },
        {
            "id": "REQ-FOREIGN",
            "number": "900003",
            "phone": "+7 495 123-45-67",
            "closed_at": noon.isoformat(),
        },
        {"id": "REQ-NO-PHONE", "number": "900004", "closed_at": noon.isoformat()},
        {
            "id": "REQ-BAD-DATE",
            "number": "900005",
            "phone": "+375291000095",
            "closed_at": "26.11.2026 12:00",
        },
    ]


@dataclass
class LabSettings:
    channels: int = 4
    ring_timeout_s: float = 8
    retry_delay: str = "15s"
    max_attempts: int = 2
    input_timeout_s: float = 4
    max_repeats: int = 1
    max_call_s: float = 90
    language: str = "ru"


@dataclass
class NightLab:
    workdir: Path
    day: date
    citizens: Sequence[Citizen] = DEMO_CITIZENS
    timezone: str = "Europe/Minsk"
    settings: LabSettings = field(default_factory=LabSettings)
    with_bad_items: bool = True
    # Merged into the generated config.yaml (nested keys merge, others replace).
    overrides: dict[str, Any] = field(default_factory=dict)
    # More closed requests the portal knows (e.g. a citizen's second request, another day's).
    extra_items: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.tz = ZoneInfo(self.timezone)
        self.items: list[dict[str, Any]] = []
        self.baresips: dict[str, BaresipCitizen] = {}
        self.config_path = self.workdir / "config.yaml"
        self.database = self.workdir / "ivr-rating.sqlite"
        self._stack = ExitStack()

    # ---- the world ------------------------------------------------------------------------
    def __enter__(self) -> Self:
        check_lab_day(self.day, self.timezone)
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start(self) -> None:
        self.items = make_items(self.day, self.timezone, [c.phone for c in self.citizens])
        for item, citizen in zip(self.items, self.citizens, strict=True):
            if citizen.language:
                item["language"] = citizen.language
            else:
                item["language"] = self.settings.language
        if self.with_bad_items:
            self.items += bad_items(self.day, self.tz)
        self.items += self.extra_items
        self.kamailio_port = find_free_udp_port()
        self.kamailio = self._stack.enter_context(Kamailio(self.workdir, self.kamailio_port))
        by_behaviour: dict[str, list[str]] = {}
        for c in self.citizens:
            if c.behaviour.startswith("baresip:"):
                continue
            by_behaviour.setdefault(self._sipp_behaviour(c), []).append(c.user)
        self.sipps = [
            self._stack.enter_context(SippCitizen(self.workdir, b, users, self.kamailio_port))
            for b, users in by_behaviour.items()
        ]
        for i, c in enumerate(x for x in self.citizens if x.behaviour.startswith("baresip:")):
            low = 24000 + 200 * i
            bs = BaresipCitizen(
                self.workdir / f"baresip-{c.user}",
                c.user,
                self.kamailio_port,
                rtp_range=(low, low + 199),
            )
            self.baresips[c.user] = self._stack.enter_context(bs)
        self.portal = self._stack.enter_context(PortalEmulator(self.items, token=TOKEN))
        self.write_config()

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _sipp_behaviour(self, citizen: Citizen) -> str:
        """A speaking citizen ("speak:<law>[:bye]") starts talking 3 s after the invitation
        and tone end (pressing 2 at 1 s); "bye" hangs up 2.5 s into the sentence."""
        name, _, arg = citizen.behaviour.partition(":")
        if name != "speak":
            return citizen.behaviour
        law, _, bye = arg.partition(":")
        speech_at = self.speech_at_s(citizen.language or self.settings.language)
        ms = int(speech_at * 1000)
        return f"speak:{law}:{ms}:{ms + 2500}" if bye else f"speak:{law}:{ms}"

    def speech_at_s(self, language: str) -> float:
        """When the speaking citizen starts talking, from the answer: the key at 1 s, our
        invitation and tone, then 3 s (a loaded machine's RTP sender runs late: the tone
        may reach the citizen a second or two after its nominal end)."""
        from ivr.entry.app import PACKAGED_PROMPTS
        from prompts.library import PromptLibrary

        library = PromptLibrary(PACKAGED_PROMPTS, self.workdir / "prompt-cache", (language,))
        invite_s = len(library.render(language, ("comment_invite", "tone"))) / 8000
        return 1.0 + invite_s + 3.0

    def write_config(self) -> None:
        s = self.settings
        all_day = ["00:00-24:00"]
        config = {
            "timezone": self.timezone,
            "database": f"sqlite:///{self.database}",
            "portal": {
                "base_url": self.portal.base_url,
                "token": "${PORTAL_TOKEN}",
                "timeout_s": 5,
                "page_size": 5,
            },
            "sip": {
                "server": "127.0.0.1",
                "port": self.kamailio_port,
                "username": "dialer",
                "password": "${SIP_PASSWORD}",
                "local_ip": "127.0.0.1",
                "sip_port": find_free_udp_port(),
                "rtp_ports": "31000-31999",
            },
            "dialing": {
                "channels": s.channels,
                "ring_timeout_s": s.ring_timeout_s,
                "max_attempts": s.max_attempts,
                "retry_delay": s.retry_delay,
                # A silent citizen's second call would come in a later window: tomorrow here.
                "retry": {"no_input_retries": 0},
                "max_call_s": s.max_call_s,
            },
            # Demo only: the citizens are local programs, so every hour is a call window.
            "call_windows": {d: all_day for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
            "ivr": {
                "default_language": s.language,
                "input_timeout_s": s.input_timeout_s,
                "max_repeats": s.max_repeats,
                "comment_dir": str(self.workdir / "comments"),
            },
            "prompts": {"cache_dir": str(self.workdir / "prompt-cache")},
        }
        self.base_config = _merge(config, self.overrides)
        self.config_path.write_text(
            yaml.safe_dump(self.base_config, sort_keys=False, allow_unicode=True)
        )

    def config_variant(self, name: str, overrides: dict[str, Any]) -> Path:
        """Another config file: the lab's, with ``overrides`` merged in (e.g. a second node)."""
        path = self.workdir / f"config-{name}.yaml"
        merged = _merge(self.base_config, overrides)
        path.write_text(yaml.safe_dump(merged, sort_keys=False, allow_unicode=True))
        return path

    # ---- running ivr-rating ---------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {**os.environ, "PORTAL_TOKEN": TOKEN, "SIP_PASSWORD": SIP_PASSWORD}

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run ``ivr-rating --config <lab config> ARGS`` as a separate process."""
        return subprocess.run(
            [sys.executable, "-m", "ivr.entry.cli", "--config", str(self.config_path), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, config: Path | None = None) -> subprocess.Popen[str]:
        """Start ``ivr-rating --config <config> ARGS`` without waiting (output to log files)."""
        n = len(list(self.workdir.glob("runner-*.log")))
        with (self.workdir / f"runner-{n}.log").open("w") as log:  # the child keeps its own fd
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ivr.entry.cli",
                    "--config",
                    str(config or self.config_path),
                    *args,
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        # Whatever the test's outcome, no runner outlives the lab (a failed test must not leave
        # a night dialling into the next test's peers).
        self._stack.callback(_kill, proc)
        return proc

    def arm_baresips(self, opening_s: dict[str, float]) -> None:
        """Each baresip citizen presses its key once it has heard the whole opening prompt."""
        for c in self.citizens:
            if c.behaviour.startswith("baresip:"):
                key = c.behaviour.split(":", 1)[1]
                self.baresips[c.user].press_after_answer(key, opening_s[c.user] + 1.0, timeout=300)

    def ratings_by_request(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for request_id, _key, body in self.portal.ratings:
            assert request_id not in out, f"two ratings for {request_id}"
            out[request_id] = body
        return out

    def citizen_of(self, request_id: str) -> Citizen | None:
        for item, citizen in zip(self.items, self.citizens, strict=False):
            if item["id"] == request_id:
                return citizen
        return None


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def opening_seconds(lab: NightLab) -> dict[str, float]:
    """How long the opening prompt of each baresip citizen's request lasts (to press after it)."""
    from ivr.core.call_script import FlowSettings, RequestInfo, opening_parts
    from ivr.core.config import load_config
    from ivr.entry.app import make_prompts

    config = load_config(lab.config_path, env=lab.env())
    prompts = make_prompts(config)
    out = {}
    for item, c in zip(lab.items, lab.citizens, strict=False):
        if c.behaviour.startswith("baresip:"):
            request = RequestInfo("", item["number"], lab.day, item.get("category"))
            parts = opening_parts(request, FlowSettings(1.0, 1, config.ivr.offer_opt_out))
            out[c.user] = len(prompts.render(item.get("language") or "ru", parts)) / 8000
    return out
