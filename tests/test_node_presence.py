"""Node names and liveness: the default name is unique per process, a runner holds its name
while it lives, a second runner under a live name refuses to start, and a starting runner
takes back at once the claims of nodes that are not live (its own earlier life included) but
never a live node's calls. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from ivr.campaign.dialer import node_name, recover_after_restart
from ivr.core.config import Config
from ivr.core.errors import RunnerLocked
from storage.locks import node_is_live, node_presence
from storage.store import Store
from tests.test_dialer import INSIDE, add, cfg

LEASE = timedelta(minutes=3)


def named(name: str | None) -> Config:
    config = cfg()
    return config.model_copy(update={"node": config.node.model_copy(update={"name": name})})


def test_the_default_node_name_is_unique_per_process() -> None:
    code = "from tests.test_node_presence import named; from ivr.campaign.dialer import node_name; "
    code += "print(node_name(named(None)))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()  # fmt: skip
    mine = node_name(named(None))
    assert mine == f"{socket.gethostname()}-{os.getpid()}"
    assert other.startswith(socket.gethostname() + "-") and other != mine
    assert node_name(named("node-a")) == "node-a"


def test_a_second_runner_under_a_live_name_refuses_to_start(engine: Engine) -> None:
    with node_presence(engine, "node-a"):
        assert node_is_live(engine, "node-a")
        with pytest.raises(RunnerLocked, match="node 'node-a'"), node_presence(engine, "node-a"):
            pass  # pragma: no cover
        with node_presence(engine, "node-b"):
            assert node_is_live(engine, "node-b")
    assert not node_is_live(engine, "node-a")
    with node_presence(engine, "node-a"):  # free again once its holder stopped
        pass


def test_a_starting_runner_leaves_a_live_nodes_calls_alone(engine: Engine) -> None:
    """``night`` and ``run`` on one host: the second one to start must not close the first
    one's calls as interrupted. Once the first has died, they are taken back at once."""
    store = Store(engine)
    add(store, 2, INSIDE)
    running = named(None)  # another process on this host: its own default name
    other = "host-1234"
    (theirs,) = store.claim_due(INSIDE, 1, other, LEASE)
    with node_presence(engine, other):
        recover_after_restart(store, running, INSIDE + timedelta(seconds=5))
        assert store.attempt_history(theirs.surveys[0].id) == ["dialing"]
    # It died (its presence is gone): taken back at once, not after its lease.
    recover_after_restart(store, running, INSIDE + timedelta(seconds=6))
    assert store.attempt_history(theirs.surveys[0].id) == ["interrupted"]


def test_a_restarted_runner_with_its_own_name_takes_back_its_claims_at_once(
    engine: Engine,
) -> None:
    store = Store(engine)
    add(store, 1, INSIDE)
    config = named("node-a")
    (call,) = store.claim_due(INSIDE, 1, "node-a", LEASE)
    with node_presence(engine, "node-a"):  # the restarted runner holds its name
        recover_after_restart(store, config, INSIDE + timedelta(seconds=5))
    assert store.attempt_history(call.surveys[0].id) == ["interrupted"]
    assert store.status_counts() == {"pending": 1}
