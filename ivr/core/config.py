"""Configuration: one YAML file, loaded once into typed, validated objects and passed down.

Errors name the key (``dialing.retry_delay: expected a duration like 20m``), and one check
reports every error at once. Secrets come from the environment through ``${NAME}`` and are never
printed: they are ``SecretStr``; the database URL's password is hidden wherever it is shown
(:func:`safe_url`) and the URL is left out of the settings' repr.

Every duration key takes units (``20m``, ``1h30m``, ``45s``, ``2d``); a plain number means
seconds (days for ``node.retention_days``). Times of day are quoted strings: YAML 1.1 reads an
unquoted ``10:30`` as the number 630, which is refused with the key named.
"""

from __future__ import annotations

import ipaddress
import os
import re
import string
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ivr.core.errors import ConfigError
from ivr.core.vocabulary import Disposition

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# The keys whose ${VARIABLE} may be unset for commands that use neither the portal nor SIP.
SECRET_KEYS = frozenset({"portal.token", "sip.password"})
SUPPORTED_DATABASES = "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"


def parse_duration(value: object) -> timedelta:
    """'20m', '1h30m', '45s', '2d' or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _NUMBER.fullmatch(text):
            return timedelta(seconds=float(text))
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
            return timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))
    raise ValueError("expected a duration like 20m, 1h30m or 45s")


def _seconds(value: object) -> float:
    return parse_duration(value).total_seconds()


def _days(value: object) -> object:
    if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
        span = parse_duration(value)
        if span % timedelta(days=1):
            raise ValueError("expected a whole number of days, like 90 or 90d")
        return span.days
    return value


def _date(value: object) -> object:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not a date: {value.strip()[:20]!r} (expected YYYY-MM-DD)") from None
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
CalendarDate = Annotated[date, BeforeValidator(_date)]
# A number of seconds that also takes units: "2m" and 120 are the same.
Seconds = Annotated[float, BeforeValidator(_seconds)]
Days = Annotated[int, BeforeValidator(_days)]


def _unquoted_time(value: int) -> str:
    """YAML 1.1 reads 10:30 as 10*60+30: name what was probably meant."""
    return (
        f'write times in quotes ("{value // 60}:{value % 60:02d}"); unquoted, YAML reads '
        f"{value // 60}:{value % 60:02d} as the number {value}"
    )


def safe_url(url: str) -> str:
    """A database URL fit to print: its password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(not a database URL)"


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
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(_unquoted_time(value))
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
    ring_timeout_s: Seconds = Field(30.0, gt=0, le=300)
    max_attempts: int = Field(3, ge=1, le=20)
    # One delay for every disposition (shorthand); when set, it replaces the ladder's defaults
    # for the dispositions the `retry` section does not set itself.
    retry_delay: Duration | None = None
    retry: RetryLadder = RetryLadder()
    max_call_s: Seconds = Field(120.0, gt=10, le=1800)
    calls_per_second: float = Field(2.0, gt=0, le=100)
    # After this, counted from the request's closing, a survey ends as no_answer (survey_expired).
    survey_deadline: Duration = timedelta(days=3)

    def ladder(self, disposition: str) -> tuple[timedelta, ...]:
        explicit = self.retry.model_fields_set
        if disposition in (Disposition.BUSY, Disposition.NO_ANSWER, Disposition.FAILED):
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
    blackout_dates: tuple[CalendarDate, ...] = ()

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
    retention_days: Days = Field(90, ge=1)


class ScheduleConfig(_Section):
    import_at: time = time(8, 30)

    @field_validator("import_at", mode="before")
    @classmethod
    def _hhmm(cls, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool):
            raise ValueError(_unquoted_time(v))
        if isinstance(v, str):
            parsed = _parse_hhmm(v)
            if parsed is None:
                raise ValueError("expected HH:MM before 24:00")
            return parsed
        return v


class IvrConfig(_Section):
    default_language: Literal["ru", "be"] = "ru"
    input_timeout_s: Seconds = Field(6.0, gt=0, le=60)
    max_repeats: int = Field(2, ge=0, le=5)
    offer_opt_out: bool = True
    media_timeout_s: Seconds = Field(15.0, ge=2, le=120)
    # After "not satisfied": a short spoken comment, recorded and sent to the portal (API 1.1).
    voice_comment: bool = True
    comment_silence_s: Seconds = Field(3.0, gt=0, le=30)
    comment_max_s: Seconds = Field(60.0, ge=5, le=120)
    comment_dir: Path = Path("var/comments")
    # The question also offers 3 "talk to an operator" (see TransferConfig; off by default).
    operator_transfer: bool = False


_SIP_URI = re.compile(r"sips?:(?:[^@\s;<>\"]+@)?[A-Za-z0-9.\-\[\]:]+(?:;[^\s<>\"]*)?")


def _default_transfer_hours() -> dict[str, tuple[TimeRange, ...]]:
    return _weekday_ranges({d: (parse_range("09:00-18:00"),) for d in WEEKDAYS[:5]})


class TransferConfig(_Section):
    """Where a citizen who presses 3 is sent (SIP REFER), and when someone is there."""

    # Per weekday, "HH:MM-HH:MM" ranges in `timezone`, like call_windows.
    hours: dict[str, tuple[WindowRange, ...]] = Field(default_factory=_default_transfer_hours)
    # The operators' line as a SIP URI ("sip:operator@pbx.example"); empty: no transfer.
    target: str = ""

    @field_validator("hours")
    @classmethod
    def _days(cls, v: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
        return _weekday_ranges(v)

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


class PromptsConfig(_Section):
    dir: Path | None = None  # default: the recordings shipped in the package
    cache_dir: Path = Path("var/prompt-cache")
    languages: tuple[Literal["ru", "be"], ...] = ("ru", "be")


def format_range(r: TimeRange) -> str:
    end = "24:00" if r.end is None else r.end.strftime("%H:%M")
    return f"{r.start.strftime('%H:%M')}-{end}"


def _union(a: TimeRange, b: TimeRange) -> TimeRange:
    end = None if a.end is None or b.end is None else max(a.end, b.end)
    return TimeRange(start=min(a.start, b.start), end=end)


def _weekday_ranges(v: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
    """Every weekday's ranges, sorted; an unknown weekday or overlapping ranges are refused."""
    unknown = sorted(set(v) - set(WEEKDAYS))
    if unknown:
        raise ValueError(f"unknown weekday {unknown[0]!r}; use {', '.join(WEEKDAYS)}")
    windows = {d: tuple(sorted(v.get(d, ()), key=lambda r: r.start)) for d in WEEKDAYS}
    for day, ranges in windows.items():
        for a, b in zip(ranges, ranges[1:], strict=False):
            if a.end is None or b.start < a.end:
                raise ValueError(
                    f"{day}: {format_range(a)} and {format_range(b)} overlap; write them "
                    f"as one range ({format_range(_union(a, b))})"
                )
    return windows


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


REQUEST_URL_FIELDS = frozenset({"request_id", "number"})


class ControlConfig(_Section):
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


def _default_windows() -> dict[str, tuple[TimeRange, ...]]:
    weekday = (parse_range("09:00-13:00"), parse_range("14:00-20:00"))
    return {d: weekday for d in WEEKDAYS[:5]} | {"sat": (parse_range("10:00-16:00"),), "sun": ()}


class Config(_Section):
    timezone: str = "Europe/Minsk"
    # Left out of repr: it may carry a password (print it with safe_url).
    database: str = Field("sqlite:///var/ivr-rating.sqlite", repr=False)
    portal: PortalConfig
    sip: SipConfig
    dialing: DialingConfig = DialingConfig()
    call_windows: dict[str, tuple[WindowRange, ...]] = Field(default_factory=_default_windows)
    calendar: CalendarConfig = CalendarConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    node: NodeConfig = NodeConfig()
    ivr: IvrConfig = IvrConfig()
    prompts: PromptsConfig = PromptsConfig()
    transfer: TransferConfig = TransferConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    control: ControlConfig = ControlConfig()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("database")
    @classmethod
    def _database(cls, v: str) -> str:
        try:
            driver = make_url(v).drivername
        except (ArgumentError, ValueError):
            raise ValueError(f"not a database URL; expected {SUPPORTED_DATABASES}") from None
        if driver not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
            raise ValueError(
                f"unsupported database driver {driver!r}; expected {SUPPORTED_DATABASES}"
            )
        return v

    # A field validator, not a model one: it runs (and reports) even when other keys are wrong.
    @field_validator("call_windows")
    @classmethod
    def _days(cls, v: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
        windows = _weekday_ranges(v)
        if not any(windows.values()):
            raise ValueError("no day has a call window; nobody would ever be called")
        return windows

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def config_warnings(config: Config) -> list[str]:
    """What is allowed but probably not meant; shown by ``config check`` and logged at start."""
    out = []
    max_call = config.dialing.max_call_s
    for day, ranges in config.call_windows.items():
        for i, r in enumerate(ranges):
            end = 86400 if r.end is None else r.end.hour * 3600 + r.end.minute * 60
            if end - (r.start.hour * 3600 + r.start.minute * 60) < max_call:
                out.append(
                    f"call_windows.{day}[{i}]: {format_range(r)} is shorter than "
                    f"dialing.max_call_s ({max_call:g} s): no call fits in it"
                )
    return out


def _substitute_env(
    node: Any, path: str, env: dict[str, str], problems: list[tuple[str, str]], lenient: bool
) -> Any:
    """``${NAME}`` replaced from ``env``; an unset one is a problem of its key (or, when
    ``lenient``, an empty value for the secret keys)."""
    if isinstance(node, dict):
        return {
            k: _substitute_env(v, f"{path}.{k}" if path else str(k), env, problems, lenient)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [
            _substitute_env(v, f"{path}[{i}]", env, problems, lenient) for i, v in enumerate(node)
        ]
    if isinstance(node, str):

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in env:
                return env[name]
            if not (lenient and path in SECRET_KEYS):
                problems.append((path, f"environment variable {name} is not set"))
            return ""

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


def parse_config(
    data: object, env: dict[str, str] | None = None, *, need_secrets: bool = True
) -> Config:
    """Validate an already-parsed YAML document. Every problem is reported at once (in one
    ConfigError). Without ``need_secrets``, an unset ``portal.token`` or ``sip.password``
    variable is no error (for commands that use neither the portal nor SIP)."""
    if not isinstance(data, dict):
        raise ConfigError("", "the configuration must be a mapping of keys")
    problems: list[tuple[str, str]] = []
    env = dict(os.environ) if env is None else env
    data = _substitute_env(data, "", env, problems, lenient=not need_secrets)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        reported = {key for key, _ in problems}
        for err in exc.errors():
            key = _key_of(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "missing":
                msg = "required key is missing"
            if key not in reported:
                problems.append((key, msg))
    else:
        if config.ivr.operator_transfer and not config.transfer.target:
            problems.append(("transfer.target", "required when ivr.operator_transfer is on"))
    if problems:
        raise ConfigError.of(problems)
    return config


class _Loader(yaml.SafeLoader):
    """Safe YAML, except that a date-like value that is not a real date (2026-02-30) stays a
    string, for the key's validator to name, instead of raising from inside the parser."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)  # type: ignore[arg-type]
    except ValueError:
        return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """Where the YAML is broken and what is wrong, never the text of the line (it may hold a
    secret)."""
    if isinstance(exc, yaml.reader.ReaderError):
        return (
            f"{path}: not valid YAML: character #x{exc.character:04x} at position "
            f"{exc.position} is not allowed"
        )
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"{path}: not valid YAML"
    where = exc.problem_mark or exc.context_mark
    if where is None:
        return f"{path}: not valid YAML: {exc.problem or exc.context}"
    text = f"{path}, line {where.line + 1}, column {where.column + 1}: not valid YAML: "
    text += str(exc.problem or exc.context)
    if exc.context and exc.context_mark is not None and exc.problem:
        start = exc.context_mark
        text += f" ({exc.context} at line {start.line + 1}, column {start.column + 1})"
    return text


def load_config(
    path: Path, env: dict[str, str] | None = None, *, need_secrets: bool = True
) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError("", _yaml_problem(path, exc)) from None
    return parse_config(data, env, need_secrets=need_secrets)


def redacted(config: Config) -> dict[str, Any]:
    """The configuration as a plain mapping, secrets shown as '***' (for `config check`)."""
    dumped: dict[str, Any] = config.model_dump(mode="json", by_alias=True)
    dumped["portal"]["token"] = "***"
    dumped["sip"]["password"] = "***"
    dumped["database"] = safe_url(config.database)
    return dumped
