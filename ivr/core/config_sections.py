"""The configuration's sections for the edges and the console: the portal, SIP, the operators'
line (``transfer``), metrics, logging and the control list's links. ``ivr.core.config`` puts them
together with the campaign's own sections into one ``Config``."""

from __future__ import annotations

import ipaddress
import re
import string
from datetime import datetime
from typing import Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from ivr.core.config_values import (
    WEEKDAYS,
    Seconds,
    TimeRange,
    WindowRange,
    parse_range,
    weekday_ranges,
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortalConfig(Section):
    # token and allow_insecure_http come before base_url: its check reads them.
    token: SecretStr
    allow_insecure_http: bool = False
    base_url: str
    timeout_s: Seconds = Field(10.0, gt=0)
    page_size: int = Field(200, ge=1, le=1000)
    retry_budget_s: Seconds = Field(120.0, ge=0, le=3600)
    lookback_days: int = Field(3, ge=1, le=31)
    request_deadline_s: Seconds = Field(60.0, gt=0, le=3600)
    max_page_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_pages: int = Field(1000, ge=1)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str, info: ValidationInfo) -> str:
        if not re.match(r"https?://", v):
            raise ValueError("expected an http(s):// URL")
        parts = urlsplit(v)
        if "@" in parts.netloc:
            # Never echo it: the part before '@' is a user name and maybe a password.
            raise ValueError(
                "credentials in the URL are not allowed (user:password@); "
                "the portal gets portal.token as a bearer token"
            )
        token = info.data.get("token")
        has_token = isinstance(token, SecretStr) and bool(token.get_secret_value())
        if (
            parts.scheme == "http"
            and has_token
            and not is_loopback_host(parts.hostname or "")
            and not info.data.get("allow_insecure_http", False)
        ):
            raise ValueError(
                "a plain http:// portal off this machine would get the token in clear text; "
                "use https:// (or set portal.allow_insecure_http: true)"
            )
        return v.rstrip("/")

    @property
    def insecure(self) -> bool:
        """A plain-http portal off this machine (allowed only by allow_insecure_http)."""
        parts = urlsplit(self.base_url)
        return parts.scheme == "http" and not is_loopback_host(parts.hostname or "")


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: traffic that never leaves the machine."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SipConfig(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    server: str
    port: int = Field(5060, ge=1, le=65535)
    username: str
    password: SecretStr
    local_ip: str
    sip_port: int = Field(5062, ge=1, le=65535)
    rtp_ports: str = "21000-21999"
    caller_id: str | None = None
    # YAML key "register" (a pydantic attribute of that name would shadow BaseModel.register).
    registration: bool = Field(True, alias="register")
    # The SIP user part dialled for a citizen: E.164 without '+', after this prefix.
    dial_prefix: str = ""
    register_expires_s: int = Field(300, ge=30, le=86400)
    # A night whose registration stays lost this long stops with exit code 4.
    register_give_up_s: float = Field(300.0, gt=0)

    @field_validator("local_ip")
    @classmethod
    def _reachable(cls, v: str) -> str:
        try:
            address = ipaddress.ip_address(v.strip())
        except ValueError:
            return v.strip()  # a host name
        if address.is_unspecified:
            raise ValueError(
                f"{v.strip()} is not an address the SIP server can reach: give this machine's "
                "address as the server sees it (e.g. 192.0.2.10)"
            )
        return str(address)

    @field_validator("rtp_ports")
    @classmethod
    def _ports(cls, v: str) -> str:
        m = re.fullmatch(r"(\d+)-(\d+)", v.strip())
        if not m or not (1024 <= int(m.group(1)) <= int(m.group(2)) <= 65535):
            raise ValueError('expected a port range like "21000-21999"')
        return v.strip()

    @property
    def rtp_range(self) -> tuple[int, int]:
        low, high = self.rtp_ports.split("-")
        return int(low), int(high)


_SIP_URI = re.compile(r"sips?:(?:[^@\s;<>\"]+@)?[A-Za-z0-9.\-\[\]:]+(?:;[^\s<>\"]*)?")


def _default_transfer_hours() -> dict[str, tuple[TimeRange, ...]]:
    return weekday_ranges({d: (parse_range("09:00-18:00"),) for d in WEEKDAYS[:5]})


class TransferConfig(Section):
    """Where a citizen who presses 3 is sent (SIP REFER), and when someone is there."""

    # Per weekday, "HH:MM-HH:MM" ranges in `timezone`, like call_windows.
    hours: dict[str, tuple[WindowRange, ...]] = Field(default_factory=_default_transfer_hours)
    # The operators' line as a SIP URI ("sip:operator@pbx.example"); empty: no transfer.
    target: str = ""

    @field_validator("hours")
    @classmethod
    def _weekdays(cls, v: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
        return weekday_ranges(v)

    def is_open(self, now: datetime, tz: ZoneInfo) -> bool:
        """An operator can take a call at ``now`` (an aware datetime), by ``hours`` in ``tz``."""
        local = now.astimezone(tz)
        ranges = self.hours.get(WEEKDAYS[local.weekday()], ())
        return any(r.contains(local.time().replace(tzinfo=None)) for r in ranges)

    @field_validator("target")
    @classmethod
    def _sip_uri(cls, v: str) -> str:
        v = v.strip()
        if v and not _SIP_URI.fullmatch(v):
            raise ValueError('expected a SIP URI like "sip:operator@pbx.example"')
        return v


class MetricsConfig(Section):
    # host:port of /metrics, /healthz and /readyz on each runner; empty: off
    listen: str = ""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        v = v.strip()
        if not v:
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('expected host:port like "127.0.0.1:9120", or "" for off')
        return v


class LoggingConfig(Section):
    format: Literal["text", "json"] = "text"


REQUEST_URL_FIELDS = frozenset({"request_id", "number"})


class ControlConfig(Section):
    # The request in the portal, linked from the console's control list: {request_id} (the
    # portal's id) and/or {number} (the number people quote); "" for no link.
    request_url: str = "https://115.xn--90ais/request/{request_id}"

    @field_validator("request_url")
    @classmethod
    def _template(cls, v: str) -> str:
        v = v.strip()
        if not v:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
            raise ValueError('expected an http(s):// URL with {request_id} or {number}, or ""')
        try:
            fields = {f for _, f, spec, conv in string.Formatter().parse(v) if f is not None}
        except ValueError as exc:
            raise ValueError(f"not a URL template: {exc}") from None
        unknown = fields - REQUEST_URL_FIELDS
        if unknown or not fields:
            raise ValueError(
                f"expected {{request_id}} or {{number}} in the URL (got {sorted(fields)})"
            )
        return v

    def link(self, request_id: str, number: str) -> str | None:
        """The request's address in the portal (each value URL-quoted), or None."""
        if not self.request_url:
            return None
        return self.request_url.format(
            request_id=quote(request_id, safe=""), number=quote(number, safe="")
        )
