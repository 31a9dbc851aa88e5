"""Phone normalisation, the dial allow-list and per-item validation of portal rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, strategies as st

from ivr.core.intake import (
    ClosedRequest,
    NoUtcOffset,
    Rejected,
    is_dialable,
    mask_phone,
    normalize_phone,
    parse_item,
    parse_rfc3339,
)

# -- normalize_phone ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("8 (029) 123-45-67", "+375291234567"),
        ("80291234567", "+375291234567"),
        ("+375 29 123 45 67", "+375291234567"),
        ("29 1234567", "+375291234567"),
        ("375291234567", "+375291234567"),
        ("+375 (29) 123-45-67", "+375291234567"),
        ("8029 123.45.67", "+375291234567"),
        ("017 222-33-44", "+375172223344"),
        ("8 (017) 222 33 44", "+375172223344"),
        ("+375 33 123-45-67", "+375331234567"),
        ("8 044 7654321", "+375447654321"),
        ("+7 495 123-45-67", "+74951234567"),
    ],
    ids=["8-paren-dashes", "8-digits-only", "intl-spaces", "operator-no-prefix", "cc-no-plus",
         "intl-paren", "dots", "minsk-landline", "minsk-landline-8", "mts-33", "a1-44",
         "foreign-but-valid"],
)  # fmt: skip
def test_normalize_phone(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "abc", "123", "+375 25 123 45 67", "8 029 123 45", "+375 29 123 45 67 89 00",
     "8 (029) 0234567"],
    ids=["empty", "blank", "letters", "too-short", "unassigned-25x", "missing-digits", "too-long",
         "subscriber-starts-0"],
)  # fmt: skip
def test_normalize_phone_invalid(raw: str) -> None:
    assert normalize_phone(raw) is None


# -- is_dialable ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "dialable"),
    [
        ("+375291234567", True),
        ("+375331234567", True),
        ("+375441234567", True),
        ("+375255123456", True),
        ("+375172223344", True),
        ("+375152450911", True),
        ("+3758011234567", False),
        ("+3759021234567", False),
        ("+375249123456", False),
        ("+74951234567", False),
        ("+48221234567", False),
        ("+375251234567", False),
        ("not a number", False),
        ("", False),
    ],
    ids=["mobile-29", "mobile-33", "mobile-44", "mobile-25", "fixed-minsk", "fixed-grodno",
         "toll-free-800", "premium-902", "voip-249", "foreign-ru", "foreign-pl", "invalid-by",
         "garbage", "empty"],
)  # fmt: skip
def test_is_dialable(e164: str, dialable: bool) -> None:
    assert is_dialable(e164) is dialable


@pytest.mark.parametrize(
    ("e164", "masked"),
    [("+375291234567", "+37529*****67"), ("+375172223344", "+37517*****44"), ("+1234", "***34")],
    ids=["mobile", "fixed", "short"],
)
def test_mask_phone(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


# -- parse_item: accepted ------------------------------------------------------------------

MINSK_OFFSET = timezone(timedelta(hours=3))


def item(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "REQ-1000001",
        "number": "1000001",
        "phone": "8 (029) 123-45-67",
        "closed_at": "2026-03-01T10:15:00+03:00",
        "language": "ru",
        "category": "Отопление",
        "address": "г. Минск, ул. Немиги, д. 1",
        "executor": {"id": "EX-01", "name": "ЖЭС № 3"},
    }
    for key, value in changes.items():
        if value is ...:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def accepted(raw: dict[str, Any]) -> ClosedRequest:
    result = parse_item(raw)
    assert isinstance(result, ClosedRequest), result
    return result


def test_parse_item_full() -> None:
    raw = item()
    assert parse_item(raw) == ClosedRequest(
        portal_id="REQ-1000001",
        number="1000001",
        phone_raw="8 (029) 123-45-67",
        phone="+375291234567",
        closed_at=datetime(2026, 3, 1, 10, 15, tzinfo=MINSK_OFFSET),
        language="ru",
        category="Отопление",
        address="г. Минск, ул. Немиги, д. 1",
        executor_id="EX-01",
        executor_name="ЖЭС № 3",
        consent=True,
        not_called_reason=None,
        raw=raw,
    )
    assert accepted(raw).raw is raw


def test_parse_item_minimal_defaults() -> None:
    request = accepted({"id": "A-7", "phone": "+375291234567", "closed_at": "2026-03-01T07:00:00Z"})
    assert request.number == "A-7"
    assert request.closed_at == datetime(2026, 3, 1, 7, tzinfo=UTC)
    assert (request.language, request.category, request.address) == (None, None, None)
    assert request.consent is True and request.not_called_reason is None


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"language": "be"}, "language", "be"),
        ({"language": "en"}, "language", None),
        ({"language": None}, "language", None),
        ({"language": ["ru"]}, "language", None),
        ({"language": ...}, "language", None),
        ({"closed_at": "2026-03-01t07:00:00.123z"}, "closed_at",
         datetime(2026, 3, 1, 7, 0, 0, 123000, tzinfo=UTC)),
        ({"closed_at": "2026-03-01 10:00:00-00:00"}, "closed_at",
         datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ({"category": 5}, "category", None),
        ({"address": ""}, "address", None),
        ({"number": ...}, "number", "REQ-1000001"),
        ({"number": None}, "number", "REQ-1000001"),
        ({"consent_to_calls": True}, "consent", True),
        ({"executor": {"id": 42, "name": "ЖЭС"}}, "executor_id", "42"),
        ({"executor": {"id": True}}, "executor_id", None),
        ({"executor": {"id": " "}}, "executor_id", None),
        ({"executor": "EX-01"}, "executor_id", None),
        ({"executor": {"id": "EX-1", "name": ["x"]}}, "executor_name", None),
        ({"executor": {"name": "Ж\u202eЭС"}}, "executor_name", "Ж\\u202eЭС"),
        ({"executor": {"name": "x" * 400}}, "executor_name", "x" * 300),
        ({"executor": ...}, "executor_name", None),
    ],
    ids=["language-be", "language-unknown", "language-null", "language-list", "language-absent",
         "lowercase-t-z-fraction", "space-and-minus-zero", "category-not-string", "address-empty",
         "number-absent", "number-null", "consent-true", "executor-id-number",
         "executor-id-bool", "executor-id-blank", "executor-not-object", "executor-name-list",
         "executor-name-bidi-escaped", "executor-name-cut", "executor-absent"],
)  # fmt: skip
def test_parse_item_lenient_fields(changes: dict[str, Any], field: str, expected: object) -> None:
    assert getattr(accepted(item(**changes)), field) == expected


@pytest.mark.parametrize(
    ("changes", "phone", "reason"),
    [
        ({"phone": "12"}, None, "invalid_phone"),
        ({"phone": ""}, None, "invalid_phone"),
        ({"phone": "+7 495 123-45-67"}, "+74951234567", "disallowed_number"),
        ({"phone": "8 800 100 1234"}, "+3758001001234", "disallowed_number"),
        ({"phone": "8 902 123 4567"}, "+3759021234567", "disallowed_number"),
        ({"consent_to_calls": False}, "+375291234567", "no_consent"),
        ({"consent_to_calls": False, "phone": "12"}, None, "no_consent"),
    ],
    ids=["invalid-phone", "empty-phone", "foreign", "toll-free", "premium", "no-consent",
         "no-consent-wins-over-invalid-phone"],
)  # fmt: skip
def test_parse_item_not_called(changes: dict[str, Any], phone: str | None, reason: str) -> None:
    request = accepted(item(**changes))
    assert request.phone == phone
    assert request.not_called_reason == reason


def test_repr_hides_the_phone() -> None:
    assert "123" not in repr(accepted(item(number="7", id="R")))


# -- parse_item: rejected ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "portal_id", "reason"),
    [
        (["not", "an", "object"], None, "item: expected an object, got list"),
        (None, None, "item: expected an object, got NoneType"),
        (item(id=...), None, "id: missing"),
        (item(id=""), None, "id: empty"),
        (item(id="  "), None, "id: empty"),
        (item(id=42), None, "id: expected a string, got int"),
        (item(number=1000001), "REQ-1000001", "number: expected a string, got int"),
        (item(number="10-01"), "REQ-1000001", "number: expected digits, got '10-01'"),
        (item(number=""), "REQ-1000001", "number: expected digits, got ''"),
        (item(number="١٢٣"), "REQ-1000001", "number: expected digits, got '١٢٣'"),
        (item(phone=...), "REQ-1000001", "phone: missing"),
        (item(phone=None), "REQ-1000001", "phone: missing"),
        (item(phone=375291234567), "REQ-1000001", "phone: expected a string, got int"),
        (item(closed_at=...), "REQ-1000001", "closed_at: missing"),
        (item(closed_at="2026-13-01T10:00:00+03:00"), "REQ-1000001",
         "closed_at: not an RFC 3339 date-time: '2026-13-01T10:00:00+03:00'"),
        (item(closed_at="2026-13-01"), "REQ-1000001",
         "closed_at: not an RFC 3339 date-time: '2026-13-01'"),
        (item(closed_at="20260301T100000+0300"), "REQ-1000001",
         "closed_at: not an RFC 3339 date-time: '20260301T100000+0300'"),
        (item(closed_at="2026-03-01T10:00:00"), "REQ-1000001",
         "closed_at: no UTC offset: '2026-03-01T10:00:00'"),
        (item(closed_at=1772348400), "REQ-1000001", "closed_at: expected a string, got int"),
        (item(consent_to_calls="no"), "REQ-1000001",
         "consent_to_calls: expected true or false, got 'no'"),
        (item(consent_to_calls=0), "REQ-1000001",
         "consent_to_calls: expected true or false, got 0"),
        (item(consent_to_calls=None), "REQ-1000001",
         "consent_to_calls: expected true or false, got None"),
    ],
    ids=["list", "null", "id-missing", "id-empty", "id-blank", "id-int", "number-int",
         "number-dashes", "number-empty", "number-arabic-digits", "phone-missing", "phone-null",
         "phone-int", "closed-at-missing", "closed-at-month-13", "closed-at-date-only",
         "closed-at-basic-format", "closed-at-no-offset", "closed-at-epoch", "consent-string",
         "consent-int", "consent-null"],
)  # fmt: skip
def test_parse_item_rejects(raw: object, portal_id: str | None, reason: str) -> None:
    assert parse_item(raw) == Rejected(portal_id, reason, raw)


def test_rejected_keeps_the_raw_item() -> None:
    raw = item(phone=...)
    result = parse_item(raw)
    assert isinstance(result, Rejected) and result.raw is raw


def test_long_values_are_cut_in_the_reason() -> None:
    result = parse_item(item(closed_at="x" * 500))
    assert isinstance(result, Rejected)
    assert len(result.reason) < 120 and result.reason.endswith("...")


# -- property: every way of writing a Belarusian mobile number means the same number ---------

_operator_and_subscriber = st.one_of(
    st.tuples(st.just("25"), st.from_regex(r"[5-79][0-9]{6}", fullmatch=True)),
    st.tuples(st.just("29"), st.from_regex(r"[1-9][0-9]{6}", fullmatch=True)),
    st.tuples(st.sampled_from(["33", "44"]), st.from_regex(r"[0-9]{7}", fullmatch=True)),
)
_separator = st.sampled_from(["", " ", "-", ".", " - "])


@st.composite
def _written(draw: st.DrawFn) -> tuple[str, str]:
    operator, subscriber = draw(_operator_and_subscriber)
    prefix, operator_form = draw(
        st.sampled_from(
            [
                ("+375", "{}"),
                ("+375", "({})"),
                ("375", "{}"),
                ("8", "0{}"),
                ("8", "(0{})"),
                ("", "8 0{}"),
                ("", "80{}"),
                ("", "{}"),
                ("", "(0{})"),
            ]
        )
    )
    groups = draw(
        st.sampled_from([[subscriber], [subscriber[:3], subscriber[3:5], subscriber[5:]],
                         [subscriber[:3], subscriber[3:]], [subscriber[:2], subscriber[2:]]])
    )  # fmt: skip
    text = prefix + draw(_separator) + operator_form.format(operator)
    for group in groups:
        text += draw(_separator) + group
    padding = draw(st.sampled_from(["", " ", "\t"]))
    return padding + text + padding, f"+375{operator}{subscriber}"


@given(_written())
def test_every_formatting_of_a_mobile_number_normalises_to_one_e164(
    case: tuple[str, str],
) -> None:
    text, e164 = case
    assert normalize_phone(text) == e164
    assert is_dialable(e164)


# -- nothing outside the allow-list is ever callable ------------------------------------------

_ALLOWED_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}

_any_phone_text = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\+?[0-9 ()\-]{1,20}", fullmatch=True),
    # Numbers that look plausible from anywhere: other countries, BY toll-free and premium.
    st.tuples(
        st.sampled_from(["+7", "+1", "+48", "+370", "+380", "+375", "8", "8 0", "8-10-", ""]),
        st.from_regex(r"[0-9]{6,12}", fullmatch=True),
    ).map("".join),
    st.sampled_from(
        ["8 801 100 12 34", "+375 800 123 45 67", "8 (902) 123-45-67", "+375 902 1234567"]
    ),
)


def _independently_allowed(text: str) -> bool:
    """The allow-list, recomputed with phonenumbers directly (BY mobile or fixed line only)."""
    try:
        number = phonenumbers.parse(text, "BY")
    except phonenumbers.NumberParseException:
        return False
    return (
        number.country_code == 375
        and phonenumbers.is_valid_number(number)
        and phonenumbers.number_type(number) in _ALLOWED_TYPES
    )


@given(_any_phone_text, st.booleans())
def test_nothing_outside_the_allow_list_is_ever_callable(text: str, consent: bool) -> None:
    item = parse_item(
        {"id": "R-1", "phone": text, "closed_at": "2026-03-01T10:00:00+03:00",
         "consent_to_calls": consent}
    )  # fmt: skip
    assert isinstance(item, ClosedRequest)
    if item.not_called_reason is None:  # it will be dialled
        assert consent and item.phone is not None
        assert item.phone.startswith("+375") and is_dialable(item.phone)
        assert _independently_allowed(text)
    else:
        assert item.not_called_reason in {"invalid_phone", "disallowed_number", "no_consent"}


@given(_written())
def test_a_number_on_the_do_not_call_list_is_never_callable_however_written(
    case: tuple[str, str],
) -> None:
    text, e164 = case
    item = parse_item(
        {"id": "R-1", "phone": text, "closed_at": "2026-03-01T10:00:00+03:00"}, {e164}
    )
    assert isinstance(item, ClosedRequest)
    assert item.not_called_reason == "do_not_call"
    other = parse_item({"id": "R-1", "phone": text, "closed_at": "2026-03-01T10:00:00+03:00"})
    assert isinstance(other, ClosedRequest) and other.not_called_reason is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"id": "R" * 201}, "id: longer than 200"),
        ({"number": "1" * 65}, "number: longer than 64"),
        ({"phone": "+375 29 " + "1" * 100}, "phone: longer than 100 characters"),
    ],
    ids=["long-id", "long-number", "long-phone"],
)
def test_values_too_long_to_store_are_rejected(changes: dict[str, Any], reason: str) -> None:
    raw = {"id": "R-1", "phone": "+375291234567", "closed_at": "2026-03-01T10:00:00+03:00"}
    item = parse_item(raw | changes)
    assert isinstance(item, Rejected) and item.reason.startswith(reason)
    assert "1111111111" not in item.reason or "number" in reason  # a phone is never echoed


def test_an_over_long_category_is_cut_not_rejected() -> None:
    raw = {"id": "R-1", "phone": "+375291234567", "closed_at": "2026-03-01T10:00:00+03:00"}
    item = parse_item(raw | {"category": "Лифт " * 100})
    assert isinstance(item, ClosedRequest) and item.category is not None
    assert len(item.category) == 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T10:00:00+03:00", datetime(2026, 11, 29, 7, 0, tzinfo=UTC)),
        ("2026-11-29t07:00:00z", datetime(2026, 11, 29, 7, 0, tzinfo=UTC)),
        ("2026-11-29 07:00:00.5Z", datetime(2026, 11, 29, 7, 0, 0, 500000, tzinfo=UTC)),
    ],
    ids=["offset", "lower-case", "space-fraction"],
)
def test_the_one_date_time_parser_reads_rfc3339(text: str, expected: datetime) -> None:
    assert parse_rfc3339(text) == expected  # fixed date: a parsed value, not a day to run for


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("2026-11-29T10:00:00", NoUtcOffset),
        ("2026-02-30T10:00:00Z", ValueError),
        ("29.11.2026 10:00", ValueError),
        ("2026-11-29T10:00:00+0300", ValueError),
    ],
    ids=["no-offset", "february-30", "not-rfc3339", "offset-without-colon"],
)
def test_the_one_date_time_parser_refuses(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_rfc3339(text)
