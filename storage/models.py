"""Tables. Times are stored as naive UTC and come back aware (``UTCDateTime``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class SurveyStatus:
    PENDING = "pending"  # waiting for its next attempt
    DIALING = "dialing"  # an attempt is in progress (committed before the INVITE)
    DONE = "done"  # has its final outcome


class Survey(Base):
    """One survey round of one portal request (one closing of it)."""

    __tablename__ = "surveys"
    __table_args__ = (
        UniqueConstraint("portal_request_id", "closed_at", name="uq_survey_request_closing"),
        Index("ix_surveys_status_next", "status", "next_attempt_at"),
        Index("ix_surveys_local_date_executor", "local_date", "executor_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    portal_request_id: Mapped[str] = mapped_column(String(200), index=True)
    request_number: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    local_date: Mapped[date] = mapped_column(Date, index=True)
    phone_raw: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    category: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=SurveyStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    digit: Mapped[str | None] = mapped_column(String(4))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A request closed again after rework starts a new round, linked to the earlier one.
    previous_survey_id: Mapped[str | None] = mapped_column(
        ForeignKey("surveys.id", name="fk_surveys_previous_survey")
    )
    round_no: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # After this the survey is given up as no_answer (survey_expired).
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Lease of the runner dialling it (several nodes on one PostgreSQL).
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claim_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the portal sent about the work (None on surveys stored before 0009: "unknown").
    executor_id: Mapped[str | None] = mapped_column(String(200))
    executor_name: Mapped[str | None] = mapped_column(String(300))
    address: Mapped[str | None] = mapped_column(Text)
    category_name: Mapped[str | None] = mapped_column(String(64))  # prompts.catalog's name
    district: Mapped[str | None] = mapped_column(String(100))  # read from the address


class ControlReview(Base):
    """A controller's review of a request returned for rework (one per survey round)."""

    __tablename__ = "control_reviews"

    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id"), primary_key=True)
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reviewed_by: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)


# The console's Now: surveys finished today by outcome (index-only) and the completion rate.
Index("ix_surveys_completed_at", Survey.completed_at, Survey.outcome)
# The control list: the requests returned for rework by day, with (PostgreSQL) what the list
# sorts and filters on and its summary groups by, read index-only.
CONTROL_ROWS = text("outcome = 'unsatisfied'")
CONTROL_COVERED = ["closed_at", "id", "reason", "round_no", "executor_id", "executor_name",
                   "category", "category_name"]  # fmt: skip
Index(
    "ix_surveys_control",
    Survey.local_date,
    postgresql_where=CONTROL_ROWS,
    postgresql_include=CONTROL_COVERED,
    sqlite_where=CONTROL_ROWS,
)
# The control list's pages in its order (newest closing first; unsatisfied again read first
# from the same index), a page after the last one shown (keyset), never an OFFSET.
CONTROL_ORDER_COVERED = ["local_date", "reason", "round_no", "executor_id", "category",
                         "category_name"]  # fmt: skip
Index(
    "ix_surveys_control_order",
    Survey.closed_at,
    Survey.id,
    postgresql_where=CONTROL_ROWS,
    postgresql_include=CONTROL_ORDER_COVERED,
    sqlite_where=CONTROL_ROWS,
)
# The same for one executor's list (an executor has 1 in 300 entries: read in order directly).
Index(
    "ix_surveys_control_executor",
    Survey.executor_id,
    Survey.closed_at,
    Survey.id,
    postgresql_where=CONTROL_ROWS,
    postgresql_include=["local_date", "reason", "round_no"],
    sqlite_where=CONTROL_ROWS,
)


class CallAttempt(Base):
    """One INVITE placed for a survey (a digest retry of the same INVITE is not another)."""

    __tablename__ = "call_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sip_call_id: Mapped[str | None] = mapped_column(String(200))
    sip_status: Mapped[int | None] = mapped_column(Integer)
    sip_reason: Mapped[str | None] = mapped_column(String(200))
    keys: Mapped[str] = mapped_column(String(64), default="")
    duration_s: Mapped[float | None] = mapped_column(Float)
    # "dialing" until the attempt ends; then answered/busy/no_answer/declined/invalid_number/failed
    disposition: Mapped[str] = mapped_column(String(20))
    prompt_version: Mapped[str | None] = mapped_column(String(32))
    node: Mapped[str | None] = mapped_column(String(100))
    # How each key arrived, in order: r = RFC 4733, i = SIP INFO, b = in-band tone.
    key_sources: Mapped[str | None] = mapped_column(String(64))


class DeliveryState:
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


OPEN_DELIVERY = text("state IN ('pending', 'dead')")


class Delivery(Base):
    """The outbox: the rating to post for a survey, written with its outcome in one transaction."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_state_next", "state", "priority", "next_try_at"),
        # The console's outbox figures and portal alarms, read from this small index alone
        # (the delivered rows, nearly all of them, are not in it).
        Index(
            "ix_deliveries_open",
            "state",
            "tries",
            "http_status",
            postgresql_where=OPEN_DELIVERY,
            sqlite_where=OPEN_DELIVERY,
        ),  # fmt: skip
    )

    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id"), primary_key=True)
    portal_request_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    priority: Mapped[int] = mapped_column(Integer, default=1)  # 0 first: unsatisfied
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(UTCDateTime())
    http_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The node posting it right now (its lease is next_try_at); a restarted node takes back
    # its own claims at once instead of waiting for the lease.
    claimed_by: Mapped[str | None] = mapped_column(String(100))


class RejectedItem(Base):
    """A portal item that could not be surveyed at all (no id, no phone, broken date...)."""

    __tablename__ = "rejected_items"
    __table_args__ = (UniqueConstraint("local_date", "fingerprint", name="uq_rejected_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    local_date: Mapped[date] = mapped_column(Date, index=True)
    portal_request_id: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ImportRun(Base):
    """One local day imported from the portal (completed_at set when it went to the end)."""

    __tablename__ = "imports"

    local_date: Mapped[date] = mapped_column(Date, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    items: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)


class DoNotCall(Base):
    """Numbers (E.164) never to be dialled: asked by the citizen, an operator or the portal."""

    __tablename__ = "do_not_call"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ServiceFlag(Base):
    """Small shared switches every node reads (e.g. ``paused``)."""

    __tablename__ = "service_flags"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsoleUser(Base):
    """A person who signs in to the web console (``ivr-rating user add``)."""

    __tablename__ = "console_users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # viewer, operator or admin
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """One change, from the console or the CLI: written in the transaction of the change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(100))  # console user, or "cli:<os user>"
    address: Mapped[str | None] = mapped_column(String(64))  # client address; None for the CLI
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(200), index=True)
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)


class LiveSettings(Base):
    """Campaign settings edited in the console, over the configuration file's values (one row,
    ``name`` = "campaign"): a YAML-shaped mapping of the keys it overrides."""

    __tablename__ = "live_settings"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    data: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(100))


class NodeHeartbeatRow(Base):
    """The last sign of life of each runner (``storage.heartbeat``), one row per node name."""

    __tablename__ = "node_heartbeats"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(50))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    calls_up: Mapped[int] = mapped_column(Integer)
    channel_cap: Mapped[int] = mapped_column(Integer)
    # registered | unregistered (registration not configured, or stopped) | failed
    registration: Mapped[str] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)


class Comment(Base):
    """The citizen's spoken comment on an unsatisfied answer: a WAV file under the comment
    directory, and its second outbox (PUT to the portal's comment path once the rating with
    ``comment_expected`` was accepted)."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_state_next", "state", "next_try_at"),)

    survey_id: Mapped[str] = mapped_column(
        ForeignKey("surveys.id", name="fk_comments_survey"), primary_key=True
    )
    attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("call_attempts.id", name="fk_comments_attempt")
    )
    portal_request_id: Mapped[str] = mapped_column(String(200))
    # None once the recording was purged (retention); length and checksum stay.
    path: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float] = mapped_column(Float)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(UTCDateTime())
    http_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A bearer token for the JSON API (``ivr-rating token add``): only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(100))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
