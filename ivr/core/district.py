"""The district of an address, when the address names one (pure; used at import).

A Minsk district is found by its name in any grammatical case ("Фрунзенский р-н",
"Фрунзенского района", "р-н Фрунзенский"); any other district by the nominative adjective
before or after "р-н"/"район" ("Борисовский р-н"). Anything else has no district (None:
shown as unknown). The result is the district's nominative name with "р-н"."""

from __future__ import annotations

import re

MINSK_DISTRICTS: tuple[str, ...] = (
    "Заводской",
    "Ленинский",
    "Московский",
    "Октябрьский",
    "Партизанский",
    "Первомайский",
    "Советский",
    "Фрунзенский",
    "Центральный",
)
# Stem of each Minsk district, followed by its case ending.
_MINSK = re.compile(
    r"(?<![а-яё])(заводск|ленинск|московск|октябрьск|партизанск|первомайск|советск"
    r"|фрунзенск|центральн)(?:ий|ый|ой|ого|ому|им|ым|ом)\s*(?:р-н|р-на|р\.|район)",
    re.IGNORECASE,
)
_MINSK_AFTER = re.compile(
    r"(?:р-н|район)\.?\s+(заводск|ленинск|московск|октябрьск|партизанск|первомайск|советск"
    r"|фрунзенск|центральн)(?:ий|ый|ой)(?![а-яё])",
    re.IGNORECASE,
)
_BY_STEM = {name[:-2].casefold(): name for name in MINSK_DISTRICTS}
_BY_STEM["центральн"] = "Центральный"
_GENERIC = re.compile(
    r"(?<![а-яёі])([А-ЯЁІ][а-яёіў'\-]+(?:ий|ый|ой|скі|ны))\s+(?:р-н|район)(?![а-яё])"
)
_MAX_LEN = 60


def district_of(address: str | None) -> str | None:
    """ "Фрунзенский р-н" for "г. Минск, Фрунзенского района, ул. ...", None if none is named."""
    if not address:
        return None
    match = _MINSK.search(address) or _MINSK_AFTER.search(address)
    if match is not None:
        return f"{_BY_STEM[match.group(1).casefold()]} р-н"
    generic = _GENERIC.search(address)
    if generic is not None and len(generic.group(1)) <= _MAX_LEN:
        return f"{generic.group(1)} р-н"
    return None
