"""The analytics counts' tables: the settled days and whole months whose surveys are counted
per group (``storage.analytics_days`` fills them, ``storage.analytics`` reads them)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, UTCDateTime


class AnalyticsDay(Base):
    """A settled local day whose surveys are counted in ``analytics_day_counts``."""

    __tablename__ = "analytics_days"

    local_date: Mapped[date] = mapped_column(Date, primary_key=True)
    surveys: Mapped[int] = mapped_column(Integer)
    aggregated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AnalyticsDayCount(Base):
    """How many surveys of one settled day fell in one group of one dimension (executor,
    category, district, or ``total``), round kind, outcome bucket and reason."""

    __tablename__ = "analytics_day_counts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    local_date: Mapped[date] = mapped_column(Date)
    dim: Mapped[str] = mapped_column(String(16))
    key: Mapped[str | None] = mapped_column(String(300))  # None: the portal did not say
    name: Mapped[str | None] = mapped_column(String(300))  # the executor's name
    rework: Mapped[int] = mapped_column(Integer)  # 1: round_no > 1
    bucket: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    n: Mapped[int] = mapped_column(Integer)
    # Of them (bucket unsatisfied), how many a controller has reviewed: counted with the day,
    # then kept right by each new review (storage.control_entries.mark_reviewed_in).
    reviewed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


Index("ix_analytics_day_counts_dim_date", AnalyticsDayCount.dim, AnalyticsDayCount.local_date)


class AnalyticsMonth(Base):
    """A calendar month all of whose days are counted, rolled up in ``analytics_month_counts``."""

    __tablename__ = "analytics_months"

    month: Mapped[date] = mapped_column(Date, primary_key=True)  # its first day
    aggregated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AnalyticsMonthCount(Base):
    """The sum of the daily counts of one month (``month``: its first day), per dimension,
    group, round kind, outcome bucket and reason: a year is 12 rows per group, not 365."""

    __tablename__ = "analytics_month_counts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    month: Mapped[date] = mapped_column(Date)
    dim: Mapped[str] = mapped_column(String(16))
    key: Mapped[str | None] = mapped_column(String(300))
    name: Mapped[str | None] = mapped_column(String(300))
    rework: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    n: Mapped[int] = mapped_column(Integer)
    reviewed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


Index("ix_analytics_month_counts_dim_month", AnalyticsMonthCount.dim, AnalyticsMonthCount.month)
