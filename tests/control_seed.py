"""Requests returned for rework, for the control list's tests: stored through the Store as a
night would store them (calls, outcomes, a spoken comment's WAV and row), dated from ``now``."""

from __future__ import annotations

import hashlib
import io
import wave
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select, update

from prompts.catalog import category_name
from storage.comments import NewComment
from storage.models import Comment, Survey
from storage.store import AttemptResult, NewSurvey, Store
from tests.helpers import start_attempt

MINSK = ZoneInfo("Europe/Minsk")
A = ("EX-A", "ЖЭС № 1")
B = ("EX-B", "=ЖЭС № 2")  # a name a spreadsheet would read as a formula
PHONE = "+375291234567"


def tone_wav(seconds: float, hz: float = 440.0) -> bytes:
    """16-bit 8 kHz mono WAV, as the nodes keep a comment."""
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)
    return out.getvalue()


@dataclass(frozen=True)
class Seeded:
    ids: dict[str, str]  # request number -> survey id (of its last round)
    wavs: dict[str, Path]  # request number -> the comment's file

    def order(self) -> list[str]:
        """The request numbers as the control list shows them."""
        return ["103", "102", "101", "105"]


def _survey(
    store: Store,
    number: str,
    closed: datetime,
    executor: tuple[str, str] | None,
    category: str | None,
    address: str | None,
    now: datetime,
) -> str:
    store.add_survey(
        NewSurvey(
            portal_request_id=f"R{number}",
            request_number=number,
            closed_at=closed,
            local_date=closed.astimezone(MINSK).date(),
            phone_raw="8 029 123-45-67",
            phone=PHONE,
            language="ru",
            category=category,
            executor_id=executor[0] if executor else None,
            executor_name=executor[1] if executor else None,
            address=address,
            category_name=category_name(category),
        ),
        now,
    )
    with store.engine.connect() as conn:
        return str(
            conn.scalar(
                select(Survey.id).where(
                    Survey.portal_request_id == f"R{number}", Survey.closed_at == closed
                )
            )
        )


def _answer(store: Store, sid: str, outcome: str, digit: str, sources: str, at: datetime) -> int:
    aid = start_attempt(store, sid, at)
    store.finish_attempt(
        aid, AttemptResult(None, 200, None, at, at, digit, "answered", None, sources)
    )
    store.record_outcome(sid, outcome, digit, None, at, at)
    return aid


def _comment(store: Store, sid: str, aid: int, folder: Path, seconds: float, at: datetime) -> Path:
    data = tone_wav(seconds)
    path = (folder / f"{sid}.wav").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    store.settle_comment(sid, NewComment(aid, str(path), seconds, digest, len(data)), at)
    return path


def seed(store: Store, folder: Path, now: datetime) -> Seeded:
    """Four requests returned for rework and one satisfied citizen, closed 1 to 40 days
    before ``now``:

    - 103 (B, roof): unsatisfied after its first closing (40 days before), and again after
      rework (round 2, in-band keys), with a 2.5 s comment: first in the list;
    - 102 (B, heating): unsatisfied by SIP INFO, no comment;
    - 101 (A, lift): unsatisfied by RTP event, with a 1.5 s comment;
    - 105 (no executor or category, as stored before they were kept): its recording purged;
    - 104 (A, lift): satisfied, not in the list.
    """
    day = timedelta(days=1)
    ids: dict[str, str] = {}
    wavs: dict[str, Path] = {}
    first = _survey(store, "103", now - 40 * day, B, "Ремонт крыши", "ул. Кульман, 1", now)
    _answer(store, first, "unsatisfied", "2", "r", now - 40 * day + timedelta(hours=3))
    ids["103"] = _survey(store, "103", now - day, B, "Ремонт крыши", "ул. Кульман, 1", now)
    aid = _answer(store, ids["103"], "unsatisfied", "2", "b", now - day + timedelta(hours=2))
    wavs["103"] = _comment(store, ids["103"], aid, folder, 2.5, now - day + timedelta(hours=2))
    ids["102"] = _survey(store, "102", now - 2 * day, B, "Отопление", "ул. Якуба Коласа, 2", now)
    _answer(store, ids["102"], "unsatisfied", "2", "i", now - 2 * day + timedelta(hours=2))
    ids["101"] = _survey(store, "101", now - 3 * day, A, "Лифт", "ул. Ложинская, 5", now)
    aid = _answer(store, ids["101"], "unsatisfied", "2", "r", now - 3 * day + timedelta(hours=2))
    wavs["101"] = _comment(store, ids["101"], aid, folder, 1.5, now - 3 * day + timedelta(hours=2))
    ids["105"] = _survey(store, "105", now - 4 * day, None, None, None, now)
    aid = _answer(store, ids["105"], "unsatisfied", "2", "r", now - 4 * day + timedelta(hours=2))
    gone = _comment(store, ids["105"], aid, folder, 3.0, now - 4 * day + timedelta(hours=2))
    gone.unlink()
    with store.engine.begin() as conn:  # as retention leaves it
        conn.execute(update(Comment).where(Comment.survey_id == ids["105"]).values(path=None))
    ids["104"] = _survey(store, "104", now - day, A, "Лифт", "ул. Ложинская, 7", now)
    _answer(store, ids["104"], "satisfied", "1", "r", now - day + timedelta(hours=2))
    return Seeded(ids, wavs)
