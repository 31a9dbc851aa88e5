"""The comment recorder and the WAV it keeps: start, stop, trimming, the echo guard."""

from __future__ import annotations

import math
import struct

import pytest

from ivr.core.comment_audio import CommentRecorder, Recording, StopReason, trim_silence
from lab.portal_contract import wav_duration_s, wav_format_problem


def tone(seconds: float, amplitude: int = 6000) -> bytes:
    n = int(seconds * 8000)
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(i / 5.0)) for i in range(n)))


def quiet(seconds: float, amplitude: int = 0) -> bytes:
    return tone(seconds, amplitude)


def feed_all(rec: CommentRecorder, *chunks: bytes) -> StopReason | None:
    result = None
    for chunk in chunks:
        # in 20 ms-ish pieces that do not align with frames, as RTP payloads may not
        for i in range(0, len(chunk), 250):
            result = rec.feed(chunk[i : i + 250])
            if result is not None:
                return result
    return result


@pytest.mark.parametrize(
    ("chunks", "reason", "kept_s"),
    [
        ((quiet(1.0), tone(2.0), quiet(4.0)), StopReason.SILENCE, 2.0),
        ((quiet(1.0), tone(70.0)), StopReason.MAX_LENGTH, 59.0),
        ((quiet(7.0),), StopReason.NO_SPEECH, None),
        ((quiet(7.0, 200),), StopReason.NO_SPEECH, None),  # line noise is not speech
        ((tone(0.4), quiet(6.0)), StopReason.NO_SPEECH, None),  # our tone's echo: not kept
        ((quiet(1.0), tone(0.06), quiet(6.0)), StopReason.NO_SPEECH, None),  # a click
        ((quiet(1.0), tone(1.0), quiet(1.0), tone(1.0), quiet(3.5)), StopReason.SILENCE, 3.0),
    ],
    ids=[
        "silence-after-speech",
        "max-length",
        "nothing",
        "noise",
        "echo-of-tone",
        "click",
        "pause-inside",
    ],  # fmt: skip
)
def test_recorder_stops_and_keeps_the_speech(
    chunks: tuple[bytes, ...], reason: StopReason, kept_s: float | None
) -> None:
    rec = CommentRecorder(max_s=60, silence_s=3, no_speech_s=6)
    assert feed_all(rec, *chunks) == reason
    speech = rec.speech()
    if kept_s is None:
        assert speech is None
    else:
        assert speech is not None
        assert abs(len(speech) / 16000 - kept_s) <= 0.15  # trimmed, 60 ms pads


def test_trim_keeps_the_voiced_middle_with_small_pads() -> None:
    pcm = quiet(1.0) + tone(1.0) + quiet(1.0)
    assert abs(len(trim_silence(pcm)) / 16000 - 1.12) < 0.03
    assert trim_silence(quiet(1.0)) == b""


def test_recording_is_a_mono_8khz_16bit_wav_with_length_and_checksum() -> None:
    rec = Recording.of_pcm(tone(1.5))
    assert wav_format_problem(rec.wav) is None
    assert rec.duration_s == 1.5 == wav_duration_s(rec.wav)
    import hashlib

    assert rec.sha256 == hashlib.sha256(rec.wav).hexdigest()
    assert wav_format_problem(b"RIFF....") is not None
