"""A person, when the citizen asks (issue 14), against real peers over loopback: the strict
Kamailio, a baresip citizen who presses 3 and is transferred (SIP REFER) to a second baresip
line, the operator, which answers; a SIPp citizen who presses 3 and refuses the REFER (603);
``ivr-rating night`` as a separate process and the real HTTP portal emulator, which receives
``callback_requested: true`` for the refused one. Never skipped."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from lab.baresip_peer import BaresipCitizen
from lab.night_lab import Citizen, LabSettings, NightLab, lab_day, opening_seconds
from tests.helpers import wait_until

pytestmark = pytest.mark.peers

OPERATOR = "375291000299"
CITIZENS = (
    Citizen("+375291000201", "baresip:3"),  # presses 3, is transferred, talks to the operator
    Citizen("+375291000202", "refuse_refer:3"),  # presses 3, answers the REFER 603 Declined
)
ALL_DAY = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
OVERRIDES = {
    "ivr": {"operator_transfer": True},
    "transfer": {"target": f"sip:{OPERATOR}@127.0.0.1", "hours": ALL_DAY},
}


class TransferLab(NightLab):
    operator: BaresipCitizen
    night_output: str


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransferLab]:
    workdir = tmp_path_factory.mktemp("transfer-night")
    settings = LabSettings(channels=2, max_attempts=1)
    with TransferLab(workdir, lab_day(), CITIZENS, settings=settings, with_bad_items=False,
                     overrides=OVERRIDES) as lab:  # fmt: skip
        operator = BaresipCitizen(workdir / "operator", OPERATOR, lab.kamailio_port,
                                  rtp_range=(25000, 25199))  # fmt: skip
        with operator:
            lab.operator = operator
            lab.arm_baresips(opening_seconds(lab))
            run = lab.cli("night", "--date", lab.day.isoformat())
            lab.night_output = run.stdout + run.stderr
            assert run.returncode == 0, lab.night_output[-3000:]
            yield lab


def request_of(lab: NightLab, behaviour: str) -> str:
    return next(i["id"] for i, c in zip(lab.items, lab.citizens, strict=True)
                if c.behaviour == behaviour)  # fmt: skip


def test_the_citizen_who_presses_3_talks_to_the_operator(lab: TransferLab) -> None:
    # the operator's line rang and answered: baresip took our REFER and called the target
    wait_until(lambda: "established" in lab.operator.log().lower(), 20, "the operator's answer")
    citizen = lab.baresips[CITIZENS[0].user]
    assert "refer" in citizen.log().lower() or "transfer" in citizen.log().lower()
    body = lab.ratings_by_request()[request_of(lab, "baresip:3")]
    assert (body["outcome"], body["reason"], body["digit"]) == ("no_input", "transferred", "3")
    # in the citizen's dialog, as the proxy saw it: our REFER, its NOTIFYs, then our BYE
    # (RFC 5589: the transferor ends its leg once the NOTIFY reported the target's 200)
    requests = re.findall(r"REQ (\w+) (\S+) from \S+ cid=(\S+)", lab.kamailio.log())
    cid = next(c for m, uri, c in requests if m == "REFER" and CITIZENS[0].user in uri)
    methods = [m for m, _uri, c in requests if c == cid and m != "ACK"]
    first_notify = methods.index("NOTIFY")
    assert methods[: methods.index("REFER") + 1] == ["INVITE", "INVITE", "REFER"]
    assert methods[first_notify:] in (["NOTIFY", "NOTIFY", "BYE"], ["NOTIFY", "BYE"])
    bye_uri = [uri for m, uri, c in requests if c == cid and m == "BYE"]
    assert len(bye_uri) == 1 and CITIZENS[0].user in bye_uri[0]  # ours, to the citizen
    assert body["callback_requested"] is False and body["return_for_rework"] is False


def test_a_refused_transfer_reaches_the_portal_as_a_callback_request(lab: TransferLab) -> None:
    body = lab.ratings_by_request()[request_of(lab, "refuse_refer:3")]
    assert (body["outcome"], body["reason"], body["digit"]) == (
        "no_input",
        "callback_requested",
        "3",
    )
    assert body["callback_requested"] is True
    sipp = next(s for s in lab.sipps if s.behaviour.startswith("refuse_refer"))
    trace = sipp.messages()
    assert "REFER sip:" in trace and "603 Declined" in trace
    assert f"Refer-To: <sip:{OPERATOR}@127.0.0.1>" in trace
