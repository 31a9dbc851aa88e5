"""Node heartbeats: each runner (``night``, ``run``) upserts one row every few seconds; the
console and ``ivr-rating status`` list the nodes and flag those that fell silent.

Takes an Engine, does not own it. Time is an input: ``seen_at`` is what the writer says, and
``list_nodes`` judges silence against the ``now`` it is given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.models import NodeHeartbeatRow

Registration = Literal["registered", "unregistered", "failed"]
REGISTRATION_STATES: tuple[Registration, ...] = ("registered", "unregistered", "failed")
SILENT_AFTER_S = 30.0
# A node silent for longer is forgotten: with a per-process default node name (host-pid),
# every crashed runner would otherwise stay listed for ever.
FORGET_AFTER_S = 24 * 3600.0


@dataclass(frozen=True)
class NodeHeartbeat:
    name: str
    host: str
    pid: int
    version: str
    started_at: datetime
    seen_at: datetime
    calls_up: int
    channel_cap: int
    registration: Registration
    last_error: str | None = None


@dataclass(frozen=True)
class NodeStatus(NodeHeartbeat):
    """A heartbeat as read back, with whether the node fell silent (no heartbeat for
    ``silent_after_s``: crashed, killed, stopped or cut off from the database)."""

    silent: bool = False

    def silent_for_s(self, now: datetime) -> float:
        return max(0.0, (now - self.seen_at).total_seconds())


_COLUMNS = tuple(f.name for f in fields(NodeHeartbeat))


def write_heartbeat(engine: Engine, hb: NodeHeartbeat) -> None:
    """Insert or update the row of ``hb.name`` (one statement, no read first)."""
    if hb.registration not in REGISTRATION_STATES:
        raise ValueError(
            f"registration: expected one of {REGISTRATION_STATES}, got {hb.registration!r}"
        )
    values = asdict(hb)
    table = NodeHeartbeatRow.__table__
    insert: Any = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.name],
        set_={k: stmt.excluded[k] for k in _COLUMNS if k != "name"},
    )
    with engine.begin() as conn:
        conn.execute(stmt)


def remove_heartbeat(engine: Engine, name: str) -> None:
    """A node that stopped cleanly leaves the list (it is gone, not silent)."""
    with engine.begin() as conn:
        conn.execute(delete(NodeHeartbeatRow).where(NodeHeartbeatRow.name == name))


def list_nodes(
    engine: Engine,
    now: datetime,
    silent_after_s: float = SILENT_AFTER_S,
    forget_after_s: float = FORGET_AFTER_S,
) -> list[NodeStatus]:
    """Every node heard from within ``forget_after_s``, by name, flagged silent or not."""
    with engine.connect() as conn:
        rows = conn.execute(select(NodeHeartbeatRow.__table__).order_by("name")).mappings().all()
    out = []
    for row in rows:
        values = {k: row[k] for k in _COLUMNS}
        age_s = (now - values["seen_at"]).total_seconds()
        if age_s > forget_after_s:
            continue
        silent = age_s > silent_after_s
        out.append(NodeStatus(**values, silent=silent))
    return out
