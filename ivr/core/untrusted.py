"""Text and JSON from outside (portal pages, import files, rows shown back to operators).

- :func:`json_loads` refuses JSON nested deeper than :data:`MAX_JSON_DEPTH` with a
  :class:`ValueError` (``TooDeep``), never a ``RecursionError`` (from the decoder or from
  whatever walks the value later).
- :func:`printable` escapes control and format characters (ANSI escapes, CR, bidi overrides)
  before a value reaches a terminal or a log line; :func:`has_control` tells whether a value
  holds any.
- :func:`operator_text` is what an operator typed (a do-not-call note, a pause reason, a
  review note) as it is stored: control characters escaped once, before the database.
- :func:`csv_cell` keeps a spreadsheet from running a cell as a formula.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

MAX_JSON_DEPTH = 64
"""Far deeper than any page or item of the contract (page > items > item > executor)."""

# Control (Cc), format (Cf: bidi overrides, zero-width), line/paragraph separators, surrogates.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTAINERS = (dict, list, tuple)


class TooDeep(ValueError):
    """JSON nested deeper than the limit (a ValueError, like any other malformed JSON)."""


def json_loads(data: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that raises :class:`TooDeep` (a ValueError) for deep nesting.

    Bytes are decoded as ``json.loads`` does (UTF-8, -16 or -32); undecodable bytes raise
    UnicodeDecodeError, itself a ValueError."""
    try:
        value = json.loads(data)
    except RecursionError:  # the decoder's own guard, far below any stack overflow
        raise TooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if value_depth(value, max_depth) > max_depth:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    return value


def value_depth(value: object, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of lists and dicts in ``value``, counted without recursion, up to
    ``limit + 1`` (deeper is not explored)."""
    if not isinstance(value, _CONTAINERS):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if depth > limit:
                break
        children = node.values() if isinstance(node, dict) else node
        stack.extend([(c, depth + 1) for c in children if isinstance(c, _CONTAINERS)])
    return deepest


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in _HIDDEN_CATEGORIES


def has_control(text: str) -> bool:
    """True if ``text`` holds a control, format or line-separator character."""
    return not text.isprintable() and any(_hidden(ch) for ch in text)


def printable(text: str, keep: str = "") -> str:
    """``text`` with control and format characters escaped (``\\x1b``, ``\\u202e``), so it
    cannot move the cursor, recolour a terminal, fake a log line or reorder what is shown;
    the characters in ``keep`` (a page keeps ``\\n`` and ``\\t``) stay as they are."""
    if text.isprintable() or not has_control(text):
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if _hidden(ch) and ch not in keep
                   else ch for ch in text)  # fmt: skip


def operator_text(text: str | None, limit: int) -> str | None:
    """What an operator typed (a note, a pause reason), as stored: trimmed, control and format
    characters escaped, at most ``limit`` characters; None when nothing is left."""
    cleaned = printable((text or "").strip())[:limit].strip()
    return cleaned or None


def csv_cell(text: str) -> str:
    """A CSV export cell: escaped like :func:`printable`, and prefixed with ``'`` when it
    starts with a character a spreadsheet reads as a formula (``= + - @``, tab, CR)."""
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return printable(text)
