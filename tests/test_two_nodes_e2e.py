"""Two ``ivr-rating run`` nodes on the real PostgreSQL, each with its own SIP account and
channels, against SIPp citizens: they split the work, no survey is dialled twice, the import
runs once, and the totals add up."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from lab.night_lab import Citizen, LabSettings, NightLab, lab_day
from lab.peer_process import find_free_udp_port
from lab.readback import attempts_of
from storage.db import make_engine
from storage.store import Store
from tests.helpers import wait_until

pytestmark = pytest.mark.peers


def test_two_nodes_split_the_work(tmp_path: Path, pg_schema_url: str) -> None:
    day = lab_day()
    citizens = [Citizen(f"+375294{i:06d}", "press:1" if i % 3 else "press:2") for i in range(30)]
    common = {"database": pg_schema_url, "dialing": {"calls_per_second": 10}}
    with NightLab(
        tmp_path,
        day,
        citizens,
        settings=LabSettings(channels=3),
        with_bad_items=False,
        overrides={**common, "node": {"name": "node-a"}},
    ) as lab:
        config_b = lab.config_variant(
            "b",
            {
                "node": {"name": "node-b"},
                "sip": {
                    "username": "dialer-b",
                    "sip_port": find_free_udp_port(),
                    "rtp_ports": "33000-33999",
                },
            },
        )
        a = lab.popen("run")
        b = lab.popen("run", config=config_b)
        try:

            def thirty_ratings() -> bool:
                assert a.poll() is None and b.poll() is None, "a node died"
                return len(lab.portal.ratings) >= 30

            wait_until(thirty_ratings, 240, "30 ratings from the two nodes", poll=0.2)
            assert len(lab.portal.ratings) == 30
        finally:
            for p in (a, b):
                p.send_signal(signal.SIGTERM)
            codes = [p.wait(timeout=120) for p in (a, b)]
        assert codes == [0, 0]

        ratings = lab.ratings_by_request()  # one rating per request
        for item, citizen in zip(lab.items, citizens, strict=True):
            expected = "satisfied" if citizen.behaviour == "press:1" else "unsatisfied"
            assert ratings[item["id"]]["outcome"] == expected
        assert lab.portal.rating_posts == 30

        store = Store(make_engine(pg_schema_url))
        by_node: Counter[str | None] = Counter()
        for item in lab.items:
            attempts = attempts_of(store, item["id"])
            assert len(attempts) == 1, f"{item['id']} dialled {len(attempts)} times"
            by_node[attempts[0].node] += 1
        store.engine.dispose()
        assert sum(by_node.values()) == 30
        assert by_node["node-a"] > 0 and by_node["node-b"] > 0, by_node
        logs = "".join(p.read_text() for p in tmp_path.glob("runner-*.log"))
        assert logs.count("import of ") >= 1
        # The portal saw the day's pages fetched once per look-back day, not once per node.
        pages = [r for r in lab.portal.requests_seen if r[0] == "GET"]
        assert len(pages) == len({r[1] for r in pages})
