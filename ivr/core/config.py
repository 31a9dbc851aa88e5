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

import os
import re
from datetime import time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ivr.core.config_sections import (
    REQUEST_URL_FIELDS as REQUEST_URL_FIELDS,
    ControlConfig as ControlConfig,
    LoggingConfig as LoggingConfig,
    MetricsConfig as MetricsConfig,
    PortalConfig as PortalConfig,
    Section as Section,
    SipConfig as SipConfig,
    TransferConfig as TransferConfig,
    is_loopback_host as is_loopback_host,
)
from ivr.core.config_values import (
    WEEKDAYS as WEEKDAYS,
    CalendarDate as CalendarDate,
    Days as Days,
    Duration as Duration,
    Seconds as Seconds,
    TimeRange as TimeRange,
    WindowRange as WindowRange,
    days_value as days_value,
    format_range as format_range,
    parse_duration as parse_duration,
    parse_hhmm as parse_hhmm,
    parse_range as parse_range,
    safe_url as safe_url,
    unquoted_time as unquoted_time,
    weekday_ranges as weekday_ranges,
)
from ivr.core.errors import ConfigError
from ivr.core.vocabulary import Disposition

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The keys whose ${VARIABLE} may be unset for commands that use neither the portal nor SIP.
SECRET_KEYS = frozenset({"portal.token", "sip.password"})
SUPPORTED_DATABASES = "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"


class RetryLadder(Section):
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


class DialingConfig(Section):
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


class CalendarConfig(Section):
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


class NodeConfig(Section):
    # Names this runner in claims and logs; default: <host>-<pid>, unique per process.
    name: str | None = None
    # Days after which finished surveys lose their phone numbers (outcomes are kept).
    retention_days: Days = Field(90, ge=1)


class ScheduleConfig(Section):
    import_at: time = time(8, 30)

    @field_validator("import_at", mode="before")
    @classmethod
    def _hhmm(cls, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool):
            raise ValueError(unquoted_time(v))
        if isinstance(v, str):
            parsed = parse_hhmm(v)
            if parsed is None:
                raise ValueError("expected HH:MM before 24:00")
            return parsed
        return v


class IvrConfig(Section):
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


class PromptsConfig(Section):
    dir: Path | None = None  # default: the recordings shipped in the package
    cache_dir: Path = Path("var/prompt-cache")
    languages: tuple[Literal["ru", "be"], ...] = ("ru", "be")


def _default_windows() -> dict[str, tuple[TimeRange, ...]]:
    weekday = (parse_range("09:00-13:00"), parse_range("14:00-20:00"))
    return {d: weekday for d in WEEKDAYS[:5]} | {"sat": (parse_range("10:00-16:00"),), "sun": ()}


class Config(Section):
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
    def _weekdays(cls, v: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
        windows = weekday_ranges(v)
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
