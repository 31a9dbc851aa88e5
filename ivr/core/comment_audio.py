"""The citizen's spoken comment as audio: when it starts and ends, and the WAV that is kept.

Pure: 16-bit signed little-endian PCM at 8 kHz mono in (what the SIP edge decodes from the
negotiated G.711 law), decisions and bytes out. Time is counted in received samples, never
read from a clock, so every path is a plain unit test.

A 20 ms frame is *voiced* when its RMS is above ``VOICE_RMS`` (about -40 dBFS: far above a
line's idle noise, far below speech). Speech has started after ``START_FRAMES`` voiced frames
in a row (a click or a key's edge is not speech). The recording stops after
``silence_s`` of unvoiced audio following speech, at ``max_s``, or with no speech at all
within ``no_speech_s`` (no comment). The first ``ECHO_GUARD_S`` after the tone is dropped, so
the recording is never our prompt's echo.
"""

from __future__ import annotations

import enum
import hashlib
import io
import math
import struct
import wave
from dataclasses import dataclass

SAMPLE_RATE = 8000
SAMPLE_BYTES = 2
FRAME_SAMPLES = 160  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_BYTES
VOICE_RMS = 330.0  # of 32768: -40 dBFS
START_FRAMES = 5  # 100 ms of voice in a row is speech
# The first received audio after the tone is not kept: the tail of our own tone may still be
# on its way back (line echo, the far end's jitter buffer, our sender's lag). Nobody starts
# talking within half a second of a beep.
ECHO_GUARD_S = 0.5
PAD_FRAMES = 3  # kept around the speech when trimming (60 ms)


class StopReason(enum.StrEnum):
    SILENCE = "silence"  # the citizen stopped talking
    MAX_LENGTH = "max_length"  # ivr.comment_max_s reached
    NO_SPEECH = "no_speech"  # nothing said: no comment


def frame_rms(frame: bytes) -> float:
    n = len(frame) // SAMPLE_BYTES
    if n == 0:
        return 0.0
    samples = struct.unpack(f"<{n}h", frame[: n * SAMPLE_BYTES])
    return math.sqrt(sum(s * s for s in samples) / n)


def _voiced(frame: bytes) -> bool:
    return frame_rms(frame) >= VOICE_RMS


@dataclass
class CommentRecorder:
    """Collects received audio while a comment is recorded and says when to stop."""

    max_s: float
    silence_s: float
    no_speech_s: float
    guard_s: float = ECHO_GUARD_S

    def __post_init__(self) -> None:
        self._pcm = bytearray()
        self._partial = b""
        self._frames = 0
        self._run = 0  # voiced frames in a row
        self._quiet = 0  # unvoiced frames since the last voiced one
        self.speech_started = False
        self.stopped: StopReason | None = None

    @property
    def seconds(self) -> float:
        return self._frames * FRAME_SAMPLES / SAMPLE_RATE

    def feed(self, pcm: bytes) -> StopReason | None:
        """Add received audio; returns why to stop once it is time (then always the same)."""
        if self.stopped is not None:
            return self.stopped
        data = self._partial + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._partial = data[whole:]
        for start in range(0, whole, FRAME_BYTES):
            frame = data[start : start + FRAME_BYTES]
            self._frames += 1
            if self.seconds <= self.guard_s:
                continue
            self._pcm += frame
            if _voiced(frame):
                self._run += 1
                self._quiet = 0
                if self._run >= START_FRAMES:
                    self.speech_started = True
            else:
                self._run = 0
                self._quiet += 1
            self.stopped = self._decide()
            if self.stopped is not None:
                break
        return self.stopped

    def _decide(self) -> StopReason | None:
        if self.seconds >= self.max_s:
            return StopReason.MAX_LENGTH
        quiet_s = self._quiet * FRAME_SAMPLES / SAMPLE_RATE
        if self.speech_started and quiet_s >= self.silence_s:
            return StopReason.SILENCE
        if not self.speech_started and self.seconds >= self.no_speech_s:
            return StopReason.NO_SPEECH
        return None

    def speech(self) -> bytes | None:
        """What was said, silence trimmed at both ends; None when nothing was said."""
        if not self.speech_started:
            return None
        return trim_silence(bytes(self._pcm))


def trim_silence(pcm: bytes, pad_frames: int = PAD_FRAMES) -> bytes:
    """``pcm`` without its unvoiced frames at the start and the end (``pad_frames`` kept)."""
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
    voiced = [i for i, f in enumerate(frames) if _voiced(f)]
    if not voiced:
        return b""
    first = max(voiced[0] - pad_frames, 0)
    last = min(voiced[-1] + pad_frames, len(frames) - 1)
    return b"".join(frames[first : last + 1])


def wav_bytes(pcm: bytes) -> bytes:
    """A WAV file: mono, 8000 Hz, 16-bit signed PCM (the portal contract's format)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(SAMPLE_BYTES)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)
    return out.getvalue()


@dataclass(frozen=True)
class Recording:
    """A comment ready to keep: the WAV, its length and checksum."""

    wav: bytes
    duration_s: float
    sha256: str

    @classmethod
    def of_pcm(cls, pcm: bytes) -> Recording:
        wav = wav_bytes(pcm)
        duration = len(pcm) / SAMPLE_BYTES / SAMPLE_RATE
        return cls(wav, round(duration, 2), hashlib.sha256(wav).hexdigest())
