"""From a raw portal item to something we may call, one item at a time.

:func:`parse_item` never raises on bad data: an item that breaks the contract
becomes a :class:`Rejected` naming the field, and the night goes on. An item
that is well-formed but must not be dialled (bad phone, foreign or premium
number, no consent, a number on the do-not-call list) is a :class:`ClosedRequest`
with ``not_called_reason`` set, so a ``not_called`` rating can still be posted for it.

A phone is read only if it holds digits, spaces, one leading ``+`` and the separators
``( ) - . /``: a letter (phonenumbers would map "ABC" to 222), an extension (``доб. 12``,
``ext``, ``;ext=``, ``,``) or ``#``/``*`` make it ``invalid_phone``, never another number.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from ivr.core.untrusted import has_control, printable, value_depth
from ivr.core.vocabulary import Reason

Language = Literal["ru", "be"]
NotCalledReason = Literal[
    Reason.INVALID_PHONE, Reason.DISALLOWED_NUMBER, Reason.NO_CONSENT, Reason.DO_NOT_CALL
]

# Column widths of the surveys table: a longer value would break the insert on PostgreSQL.
MAX_ID_LEN = 200
MAX_NUMBER_LEN = 64
MAX_PHONE_RAW_LEN = 100
MAX_CATEGORY_LEN = 200
MAX_EXECUTOR_ID_LEN = 200
MAX_EXECUTOR_NAME_LEN = 300
MAX_ADDRESS_LEN = 1000
MAX_ITEM_DEPTH = 16
"""Nesting of lists and objects in one item (the contract's item has two levels)."""
EARLIEST_CLOSING = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_CLOSING_AHEAD = timedelta(days=1)
"""A closing later than ``now`` plus this is a broken date (clock skew allowed)."""

BELARUS_COUNTRY_CODE = 375
_DIALABLE_TYPES = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
_DIGITS = re.compile(r"[0-9]+")
# What a written phone may hold (see the module docstring); only ASCII digits and blanks.
_PHONE_TEXT = re.compile(r"[ \t\u00a0]*\+?[0-9 \t\u00a0().\-/]*")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# RFC 3339 section 5.6 date-time; the offset is optional here only to say so precisely.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?"
)


class NoUtcOffset(ValueError):
    """A date-time without its offset: its moment is not known."""


def parse_rfc3339(value: str) -> datetime:
    """The one parser of the portal's date-times: RFC 3339 with a UTC offset ("T", "t" or a
    space between date and time; "Z" or "z" for UTC) to an aware datetime. Raises
    :class:`NoUtcOffset` when the offset is missing, ValueError when it is no such date-time
    (also a well-formed impossible one, such as February 30)."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError("not an RFC 3339 date-time")
    if match["offset"] is None:
        raise NoUtcOffset("no UTC offset")
    # 3.11's fromisoformat takes "Z" but neither lower-case "t"/"z" nor a space.
    return datetime.fromisoformat(value.upper().replace(" ", "T"))


def normalize_phone(raw: str, region: str = "BY") -> str | None:
    """The number in E.164 (``+375291234567``), or None if it is not a valid number.

    National forms are read as ``region``: "8 (029) 123-45-67", "29 1234567"."""
    return _read_phone(raw, region)[0]


def _read_phone(raw: str, region: str = "BY") -> tuple[str | None, bool]:
    """(E.164 or None, dialable): the number parsed once (parsing dominates a big import)."""
    if _PHONE_TEXT.fullmatch(raw) is None:  # letters, extensions: before phonenumbers maps them
        return None, False
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None, False
    if number.country_code == BELARUS_COUNTRY_CODE:
        # BY is the only region of +375, so "valid" is exactly "of a known type": one lookup.
        kind = phonenumbers.number_type(number)
        valid, dialable = kind != PhoneNumberType.UNKNOWN, kind in _DIALABLE_TYPES
    else:
        valid, dialable = phonenumbers.is_valid_number(number), False
    if not valid:
        return None, False
    e164: str = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return e164, dialable


def _allowed(number: phonenumbers.PhoneNumber) -> bool:
    return (
        number.country_code == BELARUS_COUNTRY_CODE
        and phonenumbers.number_type(number) in _DIALABLE_TYPES
    )


def is_dialable(e164: str) -> bool:
    """Allow-list: a valid Belarusian mobile or fixed-line number, nothing else.

    Toll-free, premium, shared-cost, VoIP and foreign numbers are never dialled; neither is
    anything but plain E.164 digits (letters would be mapped to digits by phonenumbers)."""
    if not isinstance(e164, str) or _E164.fullmatch(e164) is None:
        return False
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) and _allowed(number)


def mask_phone(e164: str) -> str:
    """The number for logs: country and operator code and the last two digits."""
    keep_head, keep_tail = 6, 2
    if len(e164) <= keep_head + keep_tail:
        return "*" * max(0, len(e164) - keep_tail) + e164[-keep_tail:]
    return e164[:keep_head] + "*" * (len(e164) - keep_head - keep_tail) + e164[-keep_tail:]


@dataclass(frozen=True)
class ClosedRequest:
    """A closed request that passed validation. Call it unless ``not_called_reason`` is set."""

    portal_id: str
    number: str
    phone_raw: str = field(repr=False)
    phone: str | None = field(repr=False)
    closed_at: datetime
    language: Language | None = None
    category: str | None = None
    address: str | None = None
    executor_id: str | None = None
    executor_name: str | None = None
    consent: bool = True
    not_called_reason: NotCalledReason | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Rejected:
    """An item that breaks the portal contract; ``reason`` names the field."""

    portal_id: str | None
    reason: str
    raw: object = field(default=None, repr=False, compare=False)


class _Invalid(Exception):
    """Internal: one field broke the contract."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_closed_at(value: object, now: datetime | None) -> datetime:
    if not isinstance(value, str):
        raise _Invalid(f"closed_at: expected a string, got {type(value).__name__}")
    try:
        moment = parse_rfc3339(value)
    except NoUtcOffset:
        raise _Invalid(f"closed_at: no UTC offset: {_shown(value)}") from None
    except ValueError:
        raise _Invalid(f"closed_at: not an RFC 3339 date-time: {_shown(value)}") from None
    # Year 1 or 9999 cannot even be moved to local time; a closing in the future is a bug.
    latest = now + LATEST_CLOSING_AHEAD if now is not None else datetime(9000, 1, 1, tzinfo=UTC)
    if not EARLIEST_CLOSING <= moment <= latest:
        raise _Invalid(
            f"closed_at_out_of_range: {_shown(value)} is before 2000-01-01 or more than a day ahead"
        )
    return moment


def _optional_str(item: dict[str, Any], key: str) -> str | None:
    """A present, non-null field must be a string."""
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise _Invalid(f"{key}: expected a string, got {type(value).__name__}")
    return value


def _informative_str(item: dict[str, Any], key: str, limit: int = 1000) -> str | None:
    """Fields only read out or shown (category, address): anything but a string is dropped,
    an over-long one is cut (it is informative only)."""
    value = item.get(key)
    return printable(value)[:limit] if isinstance(value, str) and value.strip() else None


def _executor(item: dict[str, Any]) -> tuple[str | None, str | None]:
    """(id, name) of the organisation that did the work; informative only: an executor that
    is not an object, or an id that is neither text nor a whole number, is dropped."""
    executor = item.get("executor")
    if not isinstance(executor, dict):
        return None, None
    raw_id = executor.get("id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    executor_id = _informative_str({"id": raw_id}, "id", MAX_EXECUTOR_ID_LEN)
    return executor_id, _informative_str(executor, "name", MAX_EXECUTOR_NAME_LEN)


def _not_called_reason(
    phone: str | None, dialable: bool, consent: bool, do_not_call: Container[str]
) -> NotCalledReason | None:
    # The citizen's own choices first: they stay true whatever the phone looks like.
    if not consent:
        return Reason.NO_CONSENT
    if phone is not None and phone in do_not_call:
        return Reason.DO_NOT_CALL
    if phone is None:
        return Reason.INVALID_PHONE
    if not dialable:
        return Reason.DISALLOWED_NUMBER
    return None


def _portal_id(item: dict[str, Any]) -> str:
    portal_id = item.get("id")
    if portal_id is None:
        raise _Invalid("id: missing")
    if not isinstance(portal_id, str):
        raise _Invalid(f"id: expected a string, got {type(portal_id).__name__}")
    if not portal_id.strip():
        raise _Invalid("id: empty")
    if len(portal_id) > MAX_ID_LEN:
        raise _Invalid(f"id: longer than {MAX_ID_LEN} characters: {_shown(portal_id)}")
    if has_control(portal_id):
        raise _Invalid(f"id: contains control characters: {_shown(portal_id)}")
    return portal_id


def _request_number(item: dict[str, Any]) -> str | None:
    number = _optional_str(item, "number")
    if number is not None and _DIGITS.fullmatch(number) is None:
        raise _Invalid(f"number: expected digits, got {_shown(number)}")
    if number is not None and len(number) > MAX_NUMBER_LEN:
        raise _Invalid(f"number: longer than {MAX_NUMBER_LEN} digits: {_shown(number)}")
    return number


def _phone_raw(item: dict[str, Any]) -> str:
    if "phone" not in item or item["phone"] is None:
        raise _Invalid("phone: missing")
    phone_raw = item["phone"]
    if not isinstance(phone_raw, str):
        raise _Invalid(f"phone: expected a string, got {type(phone_raw).__name__}")
    if len(phone_raw) > MAX_PHONE_RAW_LEN:
        raise _Invalid(f"phone: longer than {MAX_PHONE_RAW_LEN} characters")
    return phone_raw


def _parse_object(
    item: dict[str, Any], do_not_call: Container[str], now: datetime | None
) -> ClosedRequest:
    portal_id = _portal_id(item)
    number = _request_number(item)
    phone_raw = _phone_raw(item)
    if "closed_at" not in item:
        raise _Invalid("closed_at: missing")
    closed_at = _parse_closed_at(item["closed_at"], now)

    consent = item.get("consent_to_calls", True)
    if not isinstance(consent, bool):
        raise _Invalid(f"consent_to_calls: expected true or false, got {_shown(consent)}")

    language = item.get("language")
    executor_id, executor_name = _executor(item)
    phone, dialable = _read_phone(phone_raw)
    return ClosedRequest(
        portal_id=portal_id,
        number=number if number is not None else portal_id,
        phone_raw=printable(phone_raw)[:MAX_PHONE_RAW_LEN],
        phone=phone,
        closed_at=closed_at,
        language=language if language in ("ru", "be") else None,
        category=_informative_str(item, "category", MAX_CATEGORY_LEN),
        address=_informative_str(item, "address", MAX_ADDRESS_LEN),
        executor_id=executor_id,
        executor_name=executor_name,
        consent=consent,
        not_called_reason=_not_called_reason(phone, dialable, consent, do_not_call),
        raw=item,
    )


def shown_id(portal_id: object) -> str | None:
    """A rejected item's id as it may be stored and printed: escaped, cut to the column."""
    if not isinstance(portal_id, str) or not portal_id.strip():
        return None
    return printable(portal_id)[:MAX_ID_LEN]


def parse_item(
    raw: object, do_not_call: Container[str] = frozenset(), now: datetime | None = None
) -> ClosedRequest | Rejected:
    """Validate one portal item on its own; never raises, whatever ``raw`` holds.

    ``do_not_call`` holds E.164 numbers never to be dialled; it is checked on the normalised
    form, so any way of writing a listed number is caught. ``now`` bounds ``closed_at``
    (at most a day ahead); without it only impossible years are refused."""
    if not isinstance(raw, dict):
        return Rejected(None, f"item: expected an object, got {type(raw).__name__}", raw)
    try:
        if value_depth(raw, MAX_ITEM_DEPTH) > MAX_ITEM_DEPTH:
            raise _Invalid(f"item: nested deeper than {MAX_ITEM_DEPTH} levels")
        return _parse_object(raw, do_not_call, now)
    except _Invalid as exc:
        return Rejected(shown_id(raw.get("id")), str(exc), raw)
    except Exception as exc:  # a case this parser did not foresee: still one item, rejected
        return Rejected(shown_id(raw.get("id")), f"item: unreadable ({type(exc).__name__})", raw)


def with_do_not_call(item: ClosedRequest, do_not_call: Container[str]) -> ClosedRequest:
    """``item`` as :func:`parse_item` judges it knowing ``do_not_call`` (the list is looked up
    once per batch, after parsing): a listed number is not called, unless the citizen's own
    missing consent came first."""
    if item.phone is None or item.phone not in do_not_call:
        return item
    if item.not_called_reason == Reason.NO_CONSENT:
        return item
    return replace(item, not_called_reason=Reason.DO_NOT_CALL)
