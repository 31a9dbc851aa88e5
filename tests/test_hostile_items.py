"""One item never stops a batch: hostile portal items, file rows and phones, judged one by one.

Pure parts here (the item parser, the CSV/JSON reader, the phone rules, escaping); storage,
the command line and the real portal emulator in test_hostile_imports.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ivr.campaign.file_import import UnreadableFile, items_of
from ivr.core.intake import ClosedRequest, Rejected, is_dialable, normalize_phone, parse_item
from ivr.core.untrusted import TooDeep, csv_cell, has_control, json_loads, printable

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def item(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "REQ-1",
        "number": "1",
        "phone": "+375291234567",
        "closed_at": "2026-03-01T10:00:00+03:00",
    }
    return base | changes


# -- closed_at out of range ------------------------------------------------------------------


@pytest.mark.parametrize(
    "closed_at",
    ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+03:00", "0001-01-01T00:00:00Z",
     "1999-12-31T23:59:59Z", "2026-03-03T08:00:00Z"],
    ids=["year-9999", "year-1-ahead-of-utc", "year-1-utc", "before-2000", "two-days-ahead"],
)  # fmt: skip
def test_a_closing_out_of_range_is_rejected_by_name(closed_at: str) -> None:
    result = parse_item(item(closed_at=closed_at), now=NOW)
    assert isinstance(result, Rejected), result
    assert result.reason.startswith("closed_at_out_of_range: ")
    assert result.portal_id == "REQ-1"


@pytest.mark.parametrize(
    "closed_at",
    ["2000-01-01T00:00:00Z", "2026-03-03T06:59:59Z", "2026-03-01T10:00:00+03:00"],
    ids=["first-moment-of-2000", "just-under-a-day-ahead", "yesterday"],
)
def test_closings_inside_the_range_are_accepted(closed_at: str) -> None:
    assert isinstance(parse_item(item(closed_at=closed_at), now=NOW), ClosedRequest)


def test_without_now_year_9999_is_still_rejected() -> None:
    result = parse_item(item(closed_at="9999-12-31T23:59:59Z"))
    assert isinstance(result, Rejected) and result.reason.startswith("closed_at_out_of_range")


# -- phones: letters and extensions are invalid, never mapped to digits ------------------------


@pytest.mark.parametrize(
    "phone",
    ["+375 29 ABC-45-67", "8029TAXI567", "+375 29 123-45-67 доб. 12", "+375291234567 ext 5",
     "+375291234567;ext=5", "+375291234567,5", "+375291234567 x5", "+375 29 123 45 6 7#",
     "+375 29 １２３ 45 67", "+375291234567\x00", "+375 29 123\u202e4567"],
    ids=["letters", "vanity-word", "dob-extension", "ext", "rfc3966-ext", "comma-pause", "x-ext",
         "hash", "fullwidth-digits", "nul", "bidi-override"],
)  # fmt: skip
def test_a_phone_with_letters_or_an_extension_is_invalid_phone(phone: str) -> None:
    result = parse_item(item(phone=phone), now=NOW)
    assert isinstance(result, ClosedRequest), result
    assert result.not_called_reason == "invalid_phone" and result.phone is None
    assert normalize_phone(phone) is None
    assert not has_control(result.phone_raw)  # stored escaped


def test_letters_are_not_mapped_to_digits_as_phonenumbers_does() -> None:
    # Without the guard this is +375292224567, a valid mobile number someone else owns.
    mapped = phonenumbers.parse("+37529ABC4567", None)
    assert phonenumbers.is_valid_number(mapped)
    assert normalize_phone("+37529ABC4567") is None
    assert not is_dialable("+37529ABC4567")
    assert not is_dialable("+375291234567;ext=5")
    assert is_dialable("+375291234567")


# -- ids and text: control characters rejected or escaped -------------------------------------


def test_an_id_with_control_characters_is_rejected_and_shown_escaped() -> None:
    result = parse_item(item(id="REQ-1\x1b[2J\r\nFAKE LOG LINE"), now=NOW)
    assert isinstance(result, Rejected)
    assert result.reason.startswith("id: contains control characters")
    assert result.portal_id == "REQ-1\\x1b[2J\\r\\nFAKE LOG LINE"
    assert not has_control(result.reason)


def test_informative_text_is_kept_escaped() -> None:
    result = parse_item(item(category="Лифт\x1b[31m\u202e"), now=NOW)
    assert isinstance(result, ClosedRequest)
    assert result.category == "Лифт\\x1b[31m\\u202e"


@pytest.mark.parametrize(
    ("text", "cell"),
    [("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("+37529*****67", "'+37529*****67"),
     ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\\tx"), ("REQ-1", "REQ-1"),
     ("a\x1bb", "a\\x1bb"), ("", "")],
    ids=["equals", "plus", "minus", "at", "tab", "plain", "escape", "empty"],
)  # fmt: skip
def test_csv_cells_never_start_a_formula(text: str, cell: str) -> None:
    assert csv_cell(text) == cell


def test_printable_keeps_ordinary_text() -> None:
    text = 'Дом "Б", кв. 5\u00a0— ул. Немиги'
    assert printable(text) == text


# -- deep JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 100_000], ids=["just-over", "recursion-deep"])
def test_deep_json_is_a_value_error_not_a_recursion_error(depth: int) -> None:
    with pytest.raises(TooDeep, match="nested"):
        json_loads("[" * depth + "]" * depth)
    assert json_loads("[" * 64 + "]" * 64) is not None  # the limit itself is fine


def test_a_deep_item_is_rejected() -> None:
    nested: Any = "x"
    for _ in range(40):
        nested = [nested]
    result = parse_item(item(address=nested), now=NOW)
    assert isinstance(result, Rejected) and result.reason == "item: nested deeper than 16 levels"


def test_a_deep_json_file_is_unreadable_with_a_clear_message() -> None:
    data = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(UnreadableFile, match="not JSON: JSON nested deeper than 64 levels"):
        items_of(data, Path("export.json"))


# -- the CSV reader ---------------------------------------------------------------------------

HEADER = "id,number,phone,closed_at,address\n"
GOOD = "R-{n},{n},+37529123456{n},2026-03-01T10:00:00+03:00,ул. Немиги\n"


def csv_rows(data: bytes) -> tuple[list[dict[str, Any]], list[Rejected]]:
    items = items_of(data, Path("export.csv"))
    rows = [i for i in items if isinstance(i, dict)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert len(rows) + len(rejected) == len(items)
    return rows, rejected


@pytest.mark.parametrize("sep", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
def test_standard_quoting_is_kept_whatever_the_delimiter(sep: str) -> None:
    text = HEADER + 'R-1,1,+375291234561,2026-03-01T10:00:00+03:00,"Дом ""Б"", кв. 5"\n'
    rows, rejected = csv_rows(text.replace(",", sep).replace(f'""{sep} кв', '"", кв').encode())
    assert rejected == []
    assert rows[0]["address"] == 'Дом "Б", кв. 5'


def test_a_row_whose_cell_count_differs_from_the_header_is_rejected() -> None:
    text = HEADER + GOOD.format(n=1) + "R-2,2,+375291234562\n" + GOOD.format(n=3)
    text += "R-4,4,+375291234564,2026-03-01T10:00:00+03:00,addr,extra\n"
    rows, rejected = csv_rows(text.encode())
    assert [r["id"] for r in rows] == ["R-1", "R-3"]
    assert [(r.portal_id, r.reason) for r in rejected] == [
        ("R-2", "csv: row at line 3 has 3 cells, the header 5"),
        ("R-4", "csv: row at line 5 has 6 cells, the header 5"),
    ]


def test_an_oversized_field_rejects_its_row_only() -> None:
    big = 'R-2,2,+375291234562,2026-03-01T10:00:00+03:00,"' + "д" * 200_000 + '"\n'
    rows, rejected = csv_rows((HEADER + GOOD.format(n=1) + big + GOOD.format(n=3)).encode())
    assert [r["id"] for r in rows] == ["R-1", "R-3"]
    assert len(rejected) == 1 and "field larger than field limit" in rejected[0].reason
    assert rejected[0].reason.startswith("csv: row at line 3")


def test_an_undecodable_line_rejects_its_row_only() -> None:
    data = (HEADER + GOOD.format(n=1)).encode() + b"R-2,2,+375291234562,2026,\xff\xfe\n"
    rows, rejected = csv_rows(data + GOOD.format(n=3).encode())
    assert [r["id"] for r in rows] == ["R-1", "R-3"]
    assert [(r.portal_id, r.reason) for r in rejected] == [
        ("R-2", "csv: row at line 3 is not UTF-8 text")
    ]
    json.dumps(rejected[0].raw, ensure_ascii=False).encode()  # keepable as it is


# -- properties: any input is stored-or-rejected, never another exception ---------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip
_closings = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                  r"([Zz]|[+-][0-9]{2}:[0-9]{2})?", fullmatch=True),
)  # fmt: skip
any_items = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=250), json_values),
        "number": st.one_of(st.from_regex(r"[0-9]{1,70}", fullmatch=True), json_values),
        "phone": st.one_of(st.text(max_size=120), json_values),
        "closed_at": st.one_of(_closings, json_values),
        "consent_to_calls": json_values,
        "language": json_values,
        "category": json_values,
        "address": json_values,
    },
)


@given(st.one_of(any_items, json_values))
def test_any_item_is_accepted_or_rejected_never_an_exception(raw: object) -> None:
    result = parse_item(raw, now=NOW)
    assert isinstance(result, ClosedRequest | Rejected)
    if isinstance(result, Rejected):
        assert result.portal_id is None or not has_control(result.portal_id)
        return
    assert not has_control(result.portal_id) and len(result.portal_id) <= 200
    assert datetime(2000, 1, 1, tzinfo=UTC) <= result.closed_at <= NOW + timedelta(days=1)
    if result.not_called_reason is None:
        assert result.phone is not None and is_dialable(result.phone)


@given(st.text(max_size=40))
def test_any_phone_text_is_a_number_or_invalid_never_an_exception(text: str) -> None:
    e164 = normalize_phone(text)
    if any(ch.isalpha() for ch in text) or any(ext in text for ext in (",", ";", "#")):
        assert e164 is None
    if e164 is not None:
        assert e164.startswith("+") and e164[1:].isdigit()
    assert isinstance(is_dialable(text), bool)


_cells = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12),
    st.sampled_from(['"', '""', '"a,b"', ";", "\t", "\r\n", "\x00", "=1+1"]),
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(_cells, min_size=1, max_size=6), max_size=6),
    st.sampled_from([",", ";", "\t"]),
    st.binary(max_size=8),
)
def test_any_csv_gives_items_or_rejected_rows_never_an_exception(
    rows: list[list[str]], sep: str, junk: bytes
) -> None:
    text = "id,phone,closed_at\n".replace(",", sep)
    text += "".join(sep.join(cells) + "\n" for cells in rows)
    data = text.encode() + junk
    try:
        items = items_of(data, Path("export.csv"))
    except UnreadableFile:
        return
    for found in items:
        assert isinstance(found, dict | Rejected)
        judged = found if isinstance(found, Rejected) else parse_item(found, now=NOW)
        assert isinstance(judged, ClosedRequest | Rejected)
        json.dumps(judged.raw, ensure_ascii=False).encode()  # what is kept can be stored


@given(st.binary(max_size=200))
def test_any_bytes_give_items_or_an_unreadable_file(data: bytes) -> None:
    for name in ("export.csv", "export.json"):
        try:
            items = items_of(data, Path(name))
        except UnreadableFile:
            continue
        assert isinstance(items, list)
