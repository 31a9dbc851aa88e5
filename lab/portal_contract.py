"""The portal contract as the emulator checks it (docs/portal-api.yaml, API 1.1): what a closed
requests query, a Rating and a comment upload must be, and the shape of every answer."""

from __future__ import annotations

import hashlib
import io
import json
import wave
from dataclasses import dataclass
from datetime import datetime

API_PREFIX = "/api/v1"
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
OUTCOMES = frozenset(
    {"satisfied", "unsatisfied", "no_input", "no_answer", "opted_out", "not_called"}
)
RATING_REQUIRED = ("survey_id", "outcome", "completed_at", "attempts", "return_for_rework")
MAX_COMMENT_S = 120.0


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of the emulator, before the handler writes it."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    trickle_s: float = 0.0  # seconds between body bytes
    endless: bool = False  # the body repeats until the client hangs up


def json_answer(status: int, payload: object, *headers: tuple[str, str]) -> Answer:
    return Answer(status, json.dumps(payload, ensure_ascii=False).encode(), headers)


def error_answer(status: int, message: str, *headers: tuple[str, str]) -> Answer:
    return json_answer(status, {"error": message}, *headers)


def aware(text: object) -> datetime | None:
    """An aware datetime from an RFC 3339 string, or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.upper().replace(" ", "T"))
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


def rating_problem(body: object, key: str) -> str | None:
    """Why a Rating body is unacceptable (422), or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    missing = [name for name in RATING_REQUIRED if name not in body]
    if missing:
        return f"missing fields: {', '.join(missing)}"
    if body["outcome"] not in OUTCOMES:
        return f"outcome not one of {sorted(OUTCOMES)}"
    if not isinstance(body["return_for_rework"], bool):
        return "return_for_rework must be a boolean"
    if body["return_for_rework"] != (body["outcome"] == "unsatisfied"):
        return "return_for_rework must be true exactly when outcome is unsatisfied"
    attempts = body["attempts"]
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
        return "attempts must be an integer >= 0"
    if aware(body["completed_at"]) is None:
        return "completed_at must be an RFC 3339 date-time with offset"
    if body["survey_id"] != key:
        return "survey_id must equal the Idempotency-Key"
    for flag in ("comment_expected", "callback_requested"):
        if flag in body and not isinstance(body[flag], bool):
            return f"{flag} must be a boolean"
    return None


def wav_format_problem(wav: bytes) -> str | None:
    """Why ``wav`` is not a mono 8 kHz 16-bit PCM WAV, or None."""
    try:
        with wave.open(io.BytesIO(wav), "rb") as w:
            if (w.getnchannels(), w.getframerate(), w.getsampwidth()) != (1, 8000, 2):
                return (
                    f"expected mono 8000 Hz 16-bit, got {w.getnchannels()} channel(s) "
                    f"{w.getframerate()} Hz {8 * w.getsampwidth()}-bit"
                )
    except (wave.Error, EOFError) as exc:
        return f"not a WAV file: {exc}"
    return None


def wav_duration_s(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav), "rb") as w:
        return w.getnframes() / w.getframerate()


def comment_problem(wav: bytes, headers: dict[str, str]) -> tuple[int, str] | None:
    """Why a comment upload is refused (status, message), or None."""
    if headers.get("content-type", "").split(";")[0].strip().lower() != "audio/wav":
        return 415, "Content-Type must be audio/wav"
    if len(wav) > 44 + int(MAX_COMMENT_S * 16000):
        return 413, f"recording longer than {MAX_COMMENT_S:.0f} s"
    problem = wav_format_problem(wav)
    if problem is not None:
        return 415, problem
    stated_sha = headers.get("x-content-sha256")
    stated_len = headers.get("x-comment-duration")
    if not stated_sha or not stated_len:
        return 400, "X-Content-SHA256 and X-Comment-Duration are required"
    if hashlib.sha256(wav).hexdigest() != stated_sha:
        return 422, "X-Content-SHA256 does not match the body"
    try:
        stated = float(stated_len)
    except ValueError:
        return 422, "X-Comment-Duration is not a number"
    if abs(stated - wav_duration_s(wav)) > 0.05:
        return 422, "X-Comment-Duration does not match the recording"
    return None
