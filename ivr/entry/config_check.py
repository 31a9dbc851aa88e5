"""What ``ivr-rating config check`` prints once the configuration is valid.

A one-screen summary (where it connects, the next 7 days' call windows in the configured zone
with holidays, working Saturdays and blackout dates applied, the next import, the warnings);
``--json`` prints the whole configuration instead (``ivr.core.config.redacted``, warnings on
stderr). Secrets never appear: the token and SIP password are ``***`` and the database URL's
password is hidden. Pure: ``now`` is an argument.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ivr.core.config import WEEKDAYS, Config, config_warnings, format_range, safe_url
from ivr.core.windows import CallCalendar, format_local, next_daily, plan_days

_KIND = {
    "holiday": "holiday",
    "working_weekend": "working Saturday",
    "blackout": "blackout date",
}


def summary_text(config: Config, path: Path, now: datetime) -> str:
    tz = config.tz
    sip = config.sip
    lines = [
        f"configuration OK: {path}",
        f"  time zone      {config.timezone} (now {format_local(now, tz)})",
        f"  database       {safe_url(config.database)}",
        f"  portal         {config.portal.base_url}",
        f"  SIP            {sip.username}@{sip.server}:{sip.port}, "
        f"from {sip.local_ip}:{sip.sip_port}",
        f"  next import    {format_local(next_daily(now, config.schedule.import_at, tz), tz)}"
        " (the previous day's closed requests)",
        f"Call windows, next 7 days (a call must end inside its window; dialing.max_call_s "
        f"{config.dialing.max_call_s:g} s):",
    ]
    plans = plan_days(CallCalendar.from_config(config), now.astimezone(tz).date())
    for plan in plans:
        ranges = ", ".join(format_range(r) for r in plan.ranges) or "no calls"
        note = ""
        if plan.kind in _KIND:
            note = _KIND[plan.kind]
            if plan.holiday:
                note += f": {plan.holiday}"
            if plan.kind != "blackout":
                note += f" (windows of {plan.uses.capitalize()})"
        weekday = WEEKDAYS[plan.day.weekday()].capitalize()
        lines.append(f"  {weekday} {plan.day.isoformat()}  {ranges}{f'  [{note}]' if note else ''}")
    lines.append(_transfer_line(config, now))
    warnings = config_warnings(config)
    lines.append(f"Warnings ({len(warnings)}):" if warnings else "Warnings: none")
    lines.extend(f"  {w}" for w in warnings)
    return "\n".join(lines)


def _transfer_line(config: Config, now: datetime) -> str:
    """Whether 3 "talk to an operator" is offered, where it goes and when."""
    if not config.ivr.operator_transfer:
        return "Operator transfer: off (ivr.operator_transfer)"
    t = config.transfer
    days = "; ".join(
        f"{day.capitalize()} {', '.join(format_range(r) for r in ranges)}"
        for day, ranges in t.hours.items()
        if ranges
    )
    state = "open now" if t.is_open(now, config.tz) else "closed now"
    return f"Operator transfer: key 3 to {t.target} ({state}); hours {days or 'never'}"
