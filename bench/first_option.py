"""How soon the citizen hears the first option ("satisfied? press 1") after answering, from
the rendered prompt, for a 7-digit request with its date and category, in ru and be.

The figure is the length of the rendered audio up to the end of the first option (the clip
"question"). The typical case is a usual request; the longest is built per language from the
longest clips there are: seven times the longest digit, the longest day, the longest month and
the longest category, so no request reaches the option later. The target is 12 s.

    .venv/bin/python bench/first_option.py
"""

from __future__ import annotations

import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.core.call_script import FlowSettings, RequestInfo, opening_parts  # noqa: E402
from prompts.catalog import (  # noqa: E402
    CLIP_NAMES,
    LANGUAGES,
    category_label,
    day_clip,
    month_clip,
)
from prompts.library import SAMPLE_RATE, PromptLibrary  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent / "prompts"
TARGET_S = 12.0
TYPICAL = RequestInfo("s", "4071235", date(2026, 11, 26), "Отопление")


def first_option_s(library: PromptLibrary, lang: str, request: RequestInfo) -> float:
    parts = opening_parts(request, FlowSettings(6.0, 2))
    upto = parts[: parts.index("question") + 1]
    return len(library.render(lang, upto)) / SAMPLE_RATE


def _longest(library: PromptLibrary, lang: str, prefix: str) -> str:
    """The suffix of the longest clip named ``prefix<suffix>`` ("digit_" -> "4")."""
    names = [n for n in CLIP_NAMES if n.startswith(prefix)]
    return max(names, key=lambda n: len(library.clip(lang, n))).removeprefix(prefix)


def longest_request(library: PromptLibrary, lang: str) -> RequestInfo:
    digit = _longest(library, lang, "digit_")
    category = category_label(_longest(library, lang, "category_"), lang)
    # Every real date (2024 has a 29 February), the one whose day and month take longest.
    days = [date(2024, 1, 1) + timedelta(days=n) for n in range(366)]

    def spoken(d: date) -> int:
        return len(library.render(lang, (day_clip(d.day), month_clip(d.month))))

    closed_on = max(days, key=spoken)
    return RequestInfo("s", digit * 7, closed_on, category)


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        library = PromptLibrary(ROOT, Path(cache), LANGUAGES)
        worst = 0.0
        for lang in LANGUAGES:
            longest = longest_request(library, lang)
            for name, request in (("typical", TYPICAL), ("longest", longest)):
                seconds = first_option_s(library, lang, request)
                worst = max(worst, seconds)
                when = f"{request.closed_on:%d %b}" if request.closed_on else "-"
                print(f"{lang}  {name:<8} {request.number} {when} {request.category:<22}"
                      f" first option heard at {seconds:5.2f} s")  # fmt: skip
        verdict = "within" if worst <= TARGET_S else "OVER"
        print(f"worst {worst:.2f} s: {verdict} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
