"""Configuration: one YAML file, loaded once into typed, validated objects and passed down.

Errors name the key (``dialing.retry_delay: expected a duration like 20m``). Secrets come from
the environment through ``${NAME}`` and are never printed: they are ``SecretStr``.
"""

from __future__ import annotations

import os
import re
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ivr.errors import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")


def parse_duration(value: object) -> timedelta:
    """'20m', '1h30m', '45s', '2d' or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
            return timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))
    raise ValueError("expected a duration like 20m, 1h30m or 45s")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class TimeRange(BaseModel):
    model_config = ConfigDict(frozen=True)
    start: time
    end: time | None  # None means midnight at the end of the day ("24:00")

    def contains(self, t: time) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


def _parse_hhmm(text: str) -> time | None:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m:
        raise ValueError(f"expected HH:MM, got {text!r}")
    hh, mm = int(m.group(1)), int(m.group(2))
    if (hh, mm) == (24, 0):
        return None
    if hh > 23 or mm > 59:
        raise ValueError(f"not a time of day: {text!r}")
    return time(hh, mm)


def parse_range(value: object) -> TimeRange:
    if isinstance(value, TimeRange):
        return value
    if not isinstance(value, str) or value.count("-") != 1:
        raise ValueError('expected a range like "09:00-13:00"')
    a, b = value.split("-")
    start, end = _parse_hhmm(a), _parse_hhmm(b)
    if start is None:
        raise ValueError(f"a range cannot start at 24:00: {value!r}")
    if end is not None and end <= start:
        raise ValueError(f"range ends before it starts: {value!r}")
    return TimeRange(start=start, end=end)


WindowRange = Annotated[TimeRange, BeforeValidator(parse_range)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortalConfig(_Section):
    base_url: str
    token: SecretStr
    timeout_s: float = Field(10.0, gt=0)
    page_size: int = Field(200, ge=1, le=1000)
    retry_budget_s: float = Field(120.0, ge=0, le=3600)
    lookback_days: int = Field(3, ge=1, le=31)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"https?://", v):
            raise ValueError("expected an http(s):// URL")
        return v.rstrip("/")


class SipConfig(_Section):
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


class RetryLadder(_Section):
    """Waits before the next call, per disposition of the last one; the last step repeats."""

    busy: tuple[Duration, ...] = (timedelta(minutes=20), timedelta(minutes=40))
    no_answer: tuple[Duration, ...] = (timedelta(hours=1), timedelta(hours=2))
    # Trunk faults: first this, then the no_answer ladder; they do not use up attempts.
    failed: tuple[Duration, ...] = (timedelta(minutes=5),)
    # Answered but no valid key: this many more calls, each on a later day.
    no_input_retries: int = Field(1, ge=0, le=3)

    @field_validator("busy", "no_answer", "failed")
    @classmethod
    def _not_empty(cls, v: tuple[timedelta, ...]) -> tuple[timedelta, ...]:
        if not v:
            raise ValueError("give at least one duration, e.g. [20m]")
        return v


MAX_CHANNELS = 200


class DialingConfig(_Section):
    channels: int = Field(4, ge=1, le=MAX_CHANNELS)
    ring_timeout_s: float = Field(30.0, gt=0, le=300)
    max_attempts: int = Field(3, ge=1, le=20)
    # One delay for every disposition (shorthand); when set, it replaces the ladder's defaults
    # for the dispositions the `retry` section does not set itself.
    retry_delay: Duration | None = None
    retry: RetryLadder = RetryLadder()
    max_call_s: float = Field(120.0, gt=10, le=1800)
    calls_per_second: float = Field(2.0, gt=0, le=100)
    # After this, counted from the request's closing, a survey ends as no_answer (survey_expired).
    survey_deadline: Duration = timedelta(days=3)

    def ladder(self, disposition: str) -> tuple[timedelta, ...]:
        explicit = self.retry.model_fields_set
        if disposition in ("busy", "no_answer", "failed"):
            if disposition not in explicit and self.retry_delay is not None:
                return (self.retry_delay,)
            steps: tuple[timedelta, ...] = getattr(self.retry, disposition)
            return steps
        raise ValueError(f"no retry ladder for {disposition!r}")


class CalendarConfig(_Section):
    # Public holidays (and transferred days off) of this country, from the `holidays` package.
    holidays: str | None = "BY"
    # Holidays use this weekday's windows; Saturdays made working days use `working_weekends_as`.
    holidays_as: str = "sun"
    working_weekends_as: str = "mon"
    blackout_dates: tuple[date, ...] = ()

    @field_validator("holidays_as", "working_weekends_as")
    @classmethod
    def _weekday(cls, v: str) -> str:
        if v not in WEEKDAYS:
            raise ValueError(f"expected one of {', '.join(WEEKDAYS)}")
        return v

    @field_validator("holidays")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        if v is None:
            return None
        import holidays as holidays_pkg

        if v.upper() not in holidays_pkg.list_supported_countries():
            raise ValueError(f"no public holiday calendar for country {v!r}")
        return v.upper()


class NodeConfig(_Section):
    # Names this runner in claims and logs; default: <host>-<pid>, unique per process.
    name: str | None = None
    # Days after which finished surveys lose their phone numbers (outcomes are kept).
    retention_days: int = Field(90, ge=1)


class ScheduleConfig(_Section):
    import_at: time = time(8, 30)

    @field_validator("import_at", mode="before")
    @classmethod
    def _hhmm(cls, v: object) -> object:
        if isinstance(v, str):
            parsed = _parse_hhmm(v)
            if parsed is None:
                raise ValueError("expected HH:MM before 24:00")
            return parsed
        return v


class IvrConfig(_Section):
    default_language: Literal["ru", "be"] = "ru"
    input_timeout_s: float = Field(6.0, gt=0, le=60)
    max_repeats: int = Field(2, ge=0, le=5)
    offer_opt_out: bool = True
    media_timeout_s: float = Field(15.0, ge=2, le=120)
    # After "not satisfied": a short spoken comment, recorded and sent to the portal (API 1.1).
    voice_comment: bool = True
    comment_silence_s: float = Field(3.0, gt=0, le=30)
    comment_max_s: float = Field(60.0, ge=5, le=120)
    comment_dir: Path = Path("var/comments")


class PromptsConfig(_Section):
    dir: Path | None = None  # default: the recordings shipped in the package
    cache_dir: Path = Path("var/prompt-cache")
    languages: tuple[Literal["ru", "be"], ...] = ("ru", "be")


class MetricsConfig(_Section):
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


class LoggingConfig(_Section):
    format: Literal["text", "json"] = "text"


def _default_windows() -> dict[str, tuple[TimeRange, ...]]:
    weekday = (parse_range("09:00-13:00"), parse_range("14:00-20:00"))
    return {d: weekday for d in WEEKDAYS[:5]} | {"sat": (parse_range("10:00-16:00"),), "sun": ()}


class Config(_Section):
    timezone: str = "Europe/Minsk"
    database: str = "sqlite:///var/ivr-rating.sqlite"
    portal: PortalConfig
    sip: SipConfig
    dialing: DialingConfig = DialingConfig()
    call_windows: dict[str, tuple[WindowRange, ...]] = Field(default_factory=_default_windows)
    calendar: CalendarConfig = CalendarConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    node: NodeConfig = NodeConfig()
    ivr: IvrConfig = IvrConfig()
    prompts: PromptsConfig = PromptsConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("call_windows")
    @classmethod
    def _days(cls, v: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
        unknown = sorted(set(v) - set(WEEKDAYS))
        if unknown:
            raise ValueError(f"unknown weekday {unknown[0]!r}; use {', '.join(WEEKDAYS)}")
        return {d: tuple(v.get(d, ())) for d in WEEKDAYS}

    @model_validator(mode="after")
    def _some_window(self) -> Config:
        if not any(self.call_windows.values()):
            raise ValueError("call_windows: no day has a call window; nobody would ever be called")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _substitute_env(node: Any, path: str, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: _substitute_env(v, f"{path}.{k}" if path else str(k), env) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_substitute_env(v, f"{path}[{i}]", env) for i, v in enumerate(node)]
    if isinstance(node, str):

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                raise ConfigError(path, f"environment variable {name} is not set")
            return env[name]

        return _ENV_REF.sub(repl, node)
    return node


def _key_of(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union")) or part in ("[key]",):
            continue
        else:
            out += f".{part}" if out else part
    return out


def parse_config(data: object, env: dict[str, str] | None = None) -> Config:
    """Validate an already-parsed YAML document."""
    if not isinstance(data, dict):
        raise ConfigError("", "the configuration must be a mapping of keys")
    data = _substitute_env(data, "", dict(os.environ) if env is None else env)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _key_of(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        raise ConfigError(key, msg) from None


def load_config(path: Path, env: dict[str, str] | None = None) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML: {exc}") from exc
    return parse_config(data, env)


def redacted(config: Config) -> dict[str, Any]:
    """The configuration as a plain mapping, secrets shown as '***' (for `config check`)."""
    dumped: dict[str, Any] = config.model_dump(mode="json", by_alias=True)
    dumped["portal"]["token"] = "***"
    dumped["sip"]["password"] = "***"
    return dumped
