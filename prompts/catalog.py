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


CLIPS: tuple[Clip, ...] = (
    Clip(
        "greeting",
        {
            "ru": "Здравствуйте! Вас беспокоит городская служба заявок 115.",
            "be": "Добры дзень! Вас турбуе гарадская служба заявак 115.",
        },
        tts={
            "ru": "Здравствуйте! Вас беспокоит городская служба заявок сто пятнадцать.",
            "be": "Добры дзень! Вас турбуе гарадская служба заявак сто пятнаццаць.",
        },
    ),
    Clip(
        "about_request",
        {
            "ru": "Мы звоним по вашей заявке номер",
            "be": "Мы тэлефануем па вашай заяўцы нумар",
        },
    ),
    *(
        Clip(digit_clip(str(d)), {lang: words[d] for lang, words in _DIGIT_WORDS.items()})
        for d in range(10)
    ),
    Clip(
        "question",
        {
            "ru": "Если вы довольны тем, как выполнена работа, нажмите 1. "
            "Если не довольны, нажмите 2.",
            "be": "Калі вы задаволены тым, як выканана праца, націсніце 1. "
            "Калі не задаволены, націсніце 2.",
        },
        tts={
            "ru": "Если вы довольны тем, как выполнена работа, нажмите один. "
            "Если не довольны, нажмите два.",
            "be": "Калі вы задаволены тым, як выканана праца, націсніце адзін. "
            "Калі не задаволены, націсніце два.",
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
