"""A whole survey call (runner + flow + adapter + real prompts) to a baresip citizen who records
what it hears: the Belarusian set is used, the request is named, and a key pressed during the
opening cuts it short. Real peers: strict kamailio and baresip; never skipped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from ivr.campaign.call_runner import CallPlan, RunnerSettings, run_call
from ivr.core.call_events import RecordOutcome
from ivr.core.call_script import FlowSettings, RequestInfo, opening_parts
from ivr.core.clock import SYSTEM_CLOCK
from ivr.core.vocabulary import Outcome
from ivr.sip.api import KeySource
from ivr.sip.pyvoip_adapter import PyVoipPhone
from lab.baresip_peer import BaresipCitizen
from lab.kamailio_peer import Kamailio
from lab.peer_process import find_free_udp_port
from prompts.library import PromptLibrary, wav_to_u8
from tests.helpers import best_match, lab_sip_settings, u8_signal

pytestmark = pytest.mark.peers

PROMPTS_ROOT = Path(__file__).resolve().parent.parent / "prompts"
NUMBER = "375291200001"
REQUEST = RequestInfo("s-1", "4071", date(2026, 11, 26), "Лифт")


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    with Kamailio(tmp_path_factory.mktemp("kam-call"), find_free_udp_port()) as kam:
        yield kam


def test_belarusian_call_names_the_request_and_barge_in_cuts_the_opening(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    prompts = PromptLibrary(PROMPTS_ROOT, tmp_path / "cache", ["ru", "be"])
    named = prompts.render("be", ["greeting", "about_request", "number:4071"])
    press_at = len(named) / 8000 + 1.0  # after the number, during the date and the question
    phone = PyVoipPhone(lab_sip_settings(kamailio.port, 28000, spread=20))
    recorded: list[RecordOutcome] = []
    before = {t.name for t in threading.enumerate()}
    with BaresipCitizen(tmp_path / "b", NUMBER, kamailio.port) as citizen:
        phone.start()
        try:
            citizen.press_after_answer("1", delay_s=press_at)
            plan = CallPlan(NUMBER, (REQUEST,), "be")
            settings = RunnerSettings(ring_timeout_s=15, max_call_s=60, flow=FlowSettings(5, 1))
            started = time.monotonic()

            def sink(rec: RecordOutcome, answered_at: datetime | None) -> None:
                recorded.append(rec)

            report = run_call(phone, plan, prompts, settings, SYSTEM_CLOCK, sink)
            took = time.monotonic() - started
        finally:
            phone.stop()
        recordings = citizen.recordings
    heard = u8_signal(wav_to_u8(recordings()[-1]))
    assert recorded == [RecordOutcome("s-1", Outcome.SATISFIED, "1")]
    assert (report.keys, report.key_sources) == ("1", KeySource.RFC4733.value)
    assert report.prompt_version == prompts.version("be")

    def heard_clip(lang: str, *parts: str) -> float:
        return best_match(heard, u8_signal(prompts.render(lang, parts)))

    # the Belarusian set, with this request's number
    assert heard_clip("be", "greeting") > 0.9
    assert heard_clip("ru", "greeting") < 0.5
    assert heard_clip("be", "about_request", "number:4071") > 0.9
    assert (
        heard_clip("be", "about_request", "number:9998")
        < heard_clip("be", "about_request", "number:4071") - 0.1
    )
    # barge-in: the question at the end of the opening never played; the thanks did
    assert heard_clip("be", "question") < 0.5
    assert heard_clip("be", "thanks_satisfied") > 0.9
    opening = prompts.render("be", opening_parts(REQUEST, settings.flow))
    thanks = prompts.render("be", ["thanks_satisfied"])
    assert took < (len(opening) + len(thanks)) / 8000  # shorter than the uncut call
    assert {t.name for t in threading.enumerate()} <= before
