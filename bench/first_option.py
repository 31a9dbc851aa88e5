"""How soon the citizen hears the first option ("satisfied? press 1") after answering, from
the rendered prompt, for a 7-digit request with its date and category, in ru and be.

The figure is the length of the rendered audio up to the end of the first option (the clip
"question"), for the typical case and for the longest day and category clips; the target
is 12 s.

    .venv/bin/python bench/first_option.py
"""

from __future__ import annotations

import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.core.callflow import FlowSettings, RequestInfo, opening_parts  # noqa: E402
from prompts.catalog import LANGUAGES  # noqa: E402
from prompts.library import SAMPLE_RATE, PromptLibrary  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent / "prompts"
TARGET_S = 12.0
CASES = {
    "typical (26 Nov, heating)": RequestInfo("s", "4071235", date(2026, 11, 26), "Отопление"),
    "longest (27 Sep, stairwell lighting)": RequestInfo(
        "s", "4777777", date(2026, 9, 27), "Освещение подъезда"
    ),
}


def first_option_s(library: PromptLibrary, lang: str, request: RequestInfo) -> float:
    parts = opening_parts(request, FlowSettings(6.0, 2))
    upto = parts[: parts.index("question") + 1]
    return len(library.render(lang, upto)) / SAMPLE_RATE


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        library = PromptLibrary(ROOT, Path(cache), LANGUAGES)
        worst = 0.0
        for lang in LANGUAGES:
            for name, request in CASES.items():
                seconds = first_option_s(library, lang, request)
                worst = max(worst, seconds)
                print(f"{lang}  {name:<38} first option heard at {seconds:5.2f} s")
        verdict = "within" if worst <= TARGET_S else "OVER"
        print(f"worst {worst:.2f} s: {verdict} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
