"""The one table of prompt clips: their names and what is said in each language.

The call flow refers to clips by name; ``prompts.build`` synthesises placeholders from
the ``text`` column and a studio reads the same script later. ``tts`` overrides what
espeak-ng is given where it would mispronounce the script (it reads "115" in
Belarusian as "адзін сто пятнаццаць" and "1." in Russian oddly), so the placeholder
says what the studio will say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LANGUAGES: tuple[str, ...] = ("ru", "be")


@dataclass(frozen=True)
class Clip:
    """One prompt clip: ``text`` is the studio script per language."""

    name: str
    text: Mapping[str, str]
    tts: Mapping[str, str] = field(default_factory=dict)
    # Not speech: a sine tone of this frequency (the beep before a recording), 0.4 s.
    tone_hz: int | None = None
    # Placeholder speed (words per minute) when not the default: digits and dates are read
    # briskly, as a person reads out a number.
    wpm: int | None = None

    def script(self, lang: str) -> str:
        return self.text[lang]

    def tts_text(self, lang: str) -> str:
        return self.tts.get(lang, self.text[lang])


_DIGIT_WORDS: dict[str, tuple[str, ...]] = {
    "ru": ("ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"),
    "be": ("нуль", "адзін", "два", "тры", "чатыры", "пяць", "шэсць", "сем", "восем", "дзевяць"),
}


def digit_clip(digit: str) -> str:
    """Name of the clip that says one decimal digit ("7" -> "digit_7")."""
    return f"digit_{digit}"


# Ordinal day of the month in the genitive ("двадцать шестого [ноября]") and the month names
# in the genitive, so "closed on 26 November" is built from two clips.
_DAY_WORDS: dict[str, tuple[str, ...]] = {
    "ru": (
        "первого", "второго", "третьего", "четвёртого", "пятого", "шестого", "седьмого",
        "восьмого", "девятого", "десятого", "одиннадцатого", "двенадцатого", "тринадцатого",
        "четырнадцатого", "пятнадцатого", "шестнадцатого", "семнадцатого", "восемнадцатого",
        "девятнадцатого", "двадцатого", "двадцать первого", "двадцать второго",
        "двадцать третьего", "двадцать четвёртого", "двадцать пятого", "двадцать шестого",
        "двадцать седьмого", "двадцать восьмого", "двадцать девятого", "тридцатого",
        "тридцать первого",
    ),
    "be": (
        "першага", "другога", "трэцяга", "чацвёртага", "пятага", "шостага", "сёмага",
        "восьмага", "дзявятага", "дзясятага", "адзінаццатага", "дванаццатага", "трынаццатага",
        "чатырнаццатага", "пятнаццатага", "шаснаццатага", "сямнаццатага", "васямнаццатага",
        "дзевятнаццатага", "дваццатага", "дваццаць першага", "дваццаць другога",
        "дваццаць трэцяга", "дваццаць чацвёртага", "дваццаць пятага", "дваццаць шостага",
        "дваццаць сёмага", "дваццаць восьмага", "дваццаць дзявятага", "трыццатага",
        "трыццаць першага",
    ),
}  # fmt: skip
_MONTH_WORDS: dict[str, tuple[str, ...]] = {
    "ru": ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
           "сентября", "октября", "ноября", "декабря"),
    "be": ("студзеня", "лютага", "сакавіка", "красавіка", "мая", "чэрвеня", "ліпеня",
           "жніўня", "верасня", "кастрычніка", "лістапада", "снежня"),
}  # fmt: skip
# The common categories of the portal, as clips; a category not listed here is not read out.
# name -> (ru, be); the portal may send either language's wording.
_CATEGORIES: dict[str, tuple[str, str]] = {
    "heating": ("Отопление", "Ацяпленне"),
    "lift": ("Лифт", "Ліфт"),
    "yard_cleaning": ("Уборка двора", "Прыбіранне двара"),
    "water_supply": ("Водоснабжение", "Водазабеспячэнне"),
    "stairwell_lighting": ("Освещение подъезда", "Асвятленне пад'езда"),
    "sewerage": ("Канализация", "Каналізацыя"),
    "roof": ("Кровля", "Дах"),
    "electricity": ("Электроснабжение", "Электразабеспячэнне"),
    "waste_removal": ("Вывоз мусора", "Вываз смецця"),
}


def day_clip(day: int) -> str:
    """Clip of the ordinal day of the month in the genitive (26 -> "day_26")."""
    if not 1 <= day <= 31:
        raise ValueError(f"no day {day}")
    return f"day_{day}"


def month_clip(month: int) -> str:
    """Clip of the month name in the genitive (11 -> "month_11")."""
    if not 1 <= month <= 12:
        raise ValueError(f"no month {month}")
    return f"month_{month}"


def _norm(text: str) -> str:
    return " ".join(text.replace("’", "'").casefold().split())


_CATEGORY_BY_TEXT: dict[str, str] = {
    _norm(text): name for name, texts in _CATEGORIES.items() for text in texts
}


def category_name(category: str | None) -> str | None:
    """The catalog's name of the portal's category ("Ліфт" and "лифт" -> "lift"), or None
    when the catalog does not know it."""
    if not category:
        return None
    return _CATEGORY_BY_TEXT.get(_norm(category))


def category_label(name: str, lang: str = "ru") -> str:
    """A catalog name as shown to people ("lift" -> "Лифт"); an unknown name as it is."""
    texts = _CATEGORIES.get(name)
    if texts is None:
        return name
    return texts[1] if lang == "be" else texts[0]


def category_clip(category: str | None) -> str | None:
    """Clip naming the portal's category, or None when there is no clip for it."""
    name = category_name(category)
    return f"category_{name}" if name else None


CLIPS: tuple[Clip, ...] = (
    Clip(
        "greeting",
        # Only who is calling: every second before the first option costs answers.
        {
            "ru": "Служба 115.",
            "be": "Служба 115.",
        },
        tts={
            "ru": "Служба сто пятнадцать.",
            "be": "Служба сто пятнаццаць.",
        },
        wpm=165,
    ),
    Clip(
        "about_request",
        {
            "ru": "Заявка",
            "be": "Заяўка",
        },
        wpm=165,
    ),
    *(
        Clip(digit_clip(str(d)), {lang: words[d] for lang, words in _DIGIT_WORDS.items()}, wpm=190)
        for d in range(10)
    ),
    *(
        Clip(day_clip(d), {lang: words[d - 1] for lang, words in _DAY_WORDS.items()}, wpm=170)
        for d in range(1, 32)
    ),
    *(
        Clip(month_clip(m), {lang: words[m - 1] for lang, words in _MONTH_WORDS.items()}, wpm=170)
        for m in range(1, 13)
    ),
    *(
        Clip(f"category_{name}", {"ru": ru.lower(), "be": be.lower()}, wpm=165)
        for name, (ru, be) in _CATEGORIES.items()
    ),
    Clip(
        "question",
        {
            "ru": "Довольны, нажмите 1.",
            "be": "Задаволены, націсніце 1.",
        },
        tts={
            "ru": "Довольны, нажмите один.",
            "be": "Задаволены, націсніце адзін.",
        },
        wpm=165,
    ),
    Clip(
        "question_rest",
        {
            "ru": "Не довольны, нажмите 2. Прослушать ещё раз, нажмите 0.",
            "be": "Не задаволены, націсніце 2. Праслухаць яшчэ раз, націсніце 0.",
        },
        tts={
            "ru": "Не довольны, нажмите два. Прослушать ещё раз, нажмите ноль.",
            "be": "Не задаволены, націсніце два. Праслухаць яшчэ раз, націсніце нуль.",
        },
    ),
    Clip(
        "question_operator",
        {
            "ru": "Поговорить с оператором, нажмите 3.",
            "be": "Пагаварыць з аператарам, націсніце 3.",
        },
        tts={
            "ru": "Поговорить с оператором, нажмите три.",
            "be": "Пагаварыць з аператарам, націсніце тры.",
        },
    ),
    Clip(
        "transfer_connecting",
        {
            "ru": "Соединяю с оператором.",
            "be": "Злучаю з аператарам.",
        },
    ),
    Clip(
        "callback_promise",
        {
            "ru": "Сейчас оператор не может ответить. Мы вам перезвоним. До свидания.",
            "be": "Зараз аператар не можа адказаць. Мы вам ператэлефануем. Да пабачэння.",
        },
    ),
    Clip(
        "comment_invite",
        {
            "ru": "После сигнала скажите в нескольких словах, что не так. "
            "Когда закончите, нажмите любую клавишу или просто помолчите.",
            "be": "Пасля сігналу скажыце ў некалькіх словах, што не так. "
            "Калі скончыце, націсніце любую клавішу ці проста памаўчыце.",
        },
    ),
    Clip("tone", {"ru": "(сигнал 1 кГц)", "be": "(сігнал 1 кГц)"}, tone_hz=1000),
    Clip(
        "question_opt_out",
        {
            "ru": "Если вы не хотите получать такие звонки, нажмите 9.",
            "be": "Калі вы не хочаце атрымліваць такія званкі, націсніце 9.",
        },
        tts={
            "ru": "Если вы не хотите получать такие звонки, нажмите девять.",
            "be": "Калі вы не хочаце атрымліваць такія званкі, націсніце дзевяць.",
        },
    ),
    Clip("answer_noted", {"ru": "Спасибо, ответ принят.", "be": "Дзякуй, адказ прыняты."}),
    Clip(
        "rework_noted",
        {
            "ru": "Спасибо. Заявка будет направлена на доработку и взята на контроль.",
            "be": "Дзякуй. Заяўка будзе накіравана на дапрацоўку і ўзята на кантроль.",
        },
    ),
    Clip("next_request", {"ru": "Следующая заявка.", "be": "Наступная заяўка."}),
    Clip(
        "opted_out_goodbye",
        {
            "ru": "Хорошо, мы больше не будем вам звонить. До свидания.",
            "be": "Добра, мы больш не будзем вам тэлефанаваць. Да пабачэння.",
        },
    ),
    Clip(
        "goodbye_time_up",
        {
            "ru": "Время разговора истекло. Спасибо, до свидания.",
            "be": "Час размовы скончыўся. Дзякуй, да пабачэння.",
        },
    ),
    Clip(
        "invalid_key",
        {
            "ru": "Эта клавиша не используется.",
            "be": "Гэтая клавіша не выкарыстоўваецца.",
        },
    ),
    Clip(
        "thanks_satisfied",
        {
            "ru": "Спасибо за ответ! До свидания.",
            "be": "Дзякуй за адказ! Да пабачэння.",
        },
    ),
    Clip(
        "thanks_unsatisfied",
        {
            "ru": "Спасибо. Ваша заявка будет направлена на доработку и взята на контроль. "
            "До свидания.",
            "be": "Дзякуй. Ваша заяўка будзе накіравана на дапрацоўку і ўзята на кантроль. "
            "Да пабачэння.",
        },
    ),
    Clip(
        "goodbye_no_input",
        {
            "ru": "Мы не получили ответа. До свидания.",
            "be": "Мы не атрымалі адказу. Да пабачэння.",
        },
    ),
)

CLIP_NAMES: tuple[str, ...] = tuple(c.name for c in CLIPS)
CLIPS_BY_NAME: dict[str, Clip] = {c.name: c for c in CLIPS}
