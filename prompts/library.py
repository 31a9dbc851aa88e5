"""Prompt clips as the audio pyVoIP plays: 8 kHz mono unsigned 8-bit linear PCM.

Source recordings live in ``root/<lang>/<clip>.<ext>`` (any format ffmpeg reads).
Each is converted once: decoded and resampled by ffmpeg through pydub, leading and
trailing silence trimmed, loudness normalised to :data:`TARGET_DBFS` (RMS) with the
peak held under :data:`PEAK_CEILING_DBFS`, then quantised to u8. Normalising before
quantising matters: 8 bits leave about 48 dB of range, so a quiet clip would lose
a good part of its signal-to-noise ratio.

Converted clips are cached on disk under ``cache_dir`` keyed by source path, content
hash and conversion settings (a changed recording is re-converted, an unchanged one
is read back), and in memory keyed by path, size and mtime.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
import warnings
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ivr.core.errors import IvrError
from prompts.catalog import CLIP_NAMES, digit_clip

with warnings.catch_warnings():
    # pydub warns on import when ffmpeg is not on PATH, yet the committed recordings (8 kHz
    # mono WAV) are read without it; a source that does need ffmpeg fails as a PromptError.
    warnings.filterwarnings("ignore", "Couldn't find ffmpeg or avconv", RuntimeWarning)
    from pydub import AudioSegment
    from pydub.exceptions import CouldntDecodeError
    from pydub.silence import detect_leading_silence

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
SILENCE_U8 = 0x80
PART_PAUSE_MS = 150
DIGIT_GAP_MS = 120
TARGET_DBFS = -20.0
PEAK_CEILING_DBFS = -1.0
# Silence is quieter than the clip's peak by this much; 10 ms steps, keep a little margin
# so soft onsets and fades are not cut.
TRIM_BELOW_PEAK_DB = 50.0
TRIM_PAD_MS = 40
# Bump when the conversion changes so disk caches written by older code are ignored.
_PIPELINE = f"v1|{SAMPLE_RATE}|{TARGET_DBFS}|{PEAK_CEILING_DBFS}|{TRIM_BELOW_PEAK_DB}|{TRIM_PAD_MS}"
# Clip names become file names and cache-file prefixes: keep them plain.
_CLIP_NAME = re.compile(r"[A-Za-z0-9_-]+")
_DECODE_ERRORS = (CouldntDecodeError, OSError, EOFError, ValueError, IndexError, KeyError)


class PromptError(IvrError):
    """A prompt clip is missing, unreadable or unusable; names the language and clip."""

    def __init__(self, message: str, *, lang: str | None = None, clip: str | None = None) -> None:
        where = "/".join(p for p in (lang, clip) if p)
        super().__init__(f"prompt {where}: {message}" if where else message)
        self.message = message
        self.lang = lang
        self.clip = clip


def silence(ms: int) -> bytes:
    """``ms`` milliseconds of u8 silence."""
    return bytes([SILENCE_U8]) * (SAMPLE_RATE * ms // 1000)


def silence_linear16(ms: int) -> bytes:
    """``ms`` milliseconds of signed 16-bit silence."""
    return b"\0\0" * (SAMPLE_RATE * ms // 1000)


def _to_telephone(segment: Any) -> Any:
    """Resample to 8 kHz mono 16-bit. ffmpeg does the resampling: pydub's own
    ``set_frame_rate`` has no anti-alias filter."""
    if segment.frame_rate != SAMPLE_RATE or segment.channels != 1:
        buf = io.BytesIO()
        segment.export(
            buf,
            format="wav",
            codec="pcm_s16le",
            parameters=["-ar", str(SAMPLE_RATE), "-ac", "1"],
        )
        buf.seek(0)
        segment = AudioSegment.from_file(buf, format="wav")
    if segment.sample_width != 2:
        segment = segment.set_sample_width(2)
    return segment


def _decode(path: Path) -> Any:
    if path.suffix.lower() == ".wav":
        # pydub leaves the file open when it is given a WAV path; hand it our own handle.
        with path.open("rb") as f:
            return _to_telephone(AudioSegment.from_file(f, format="wav"))
    return _to_telephone(AudioSegment.from_file(path))


def _samples(segment: Any) -> npt.NDArray[np.float64]:
    return np.frombuffer(segment.raw_data, dtype="<i2").astype(np.float64)


def _quantise(samples: npt.NDArray[np.float64]) -> bytes:
    """Signed 16-bit scale floats -> unsigned 8-bit, rounded, clipped."""
    u8: npt.NDArray[np.uint8] = np.clip(np.rint(samples / 256.0) + SILENCE_U8, 0, 255).astype(
        np.uint8
    )
    return u8.tobytes()


def _trim(segment: Any) -> Any:
    peak = segment.max_dBFS
    if peak == float("-inf"):
        return segment
    threshold = peak - TRIM_BELOW_PEAK_DB
    start = detect_leading_silence(segment, silence_threshold=threshold, chunk_size=10)
    end = len(segment) - detect_leading_silence(
        segment.reverse(), silence_threshold=threshold, chunk_size=10
    )
    return segment[max(0, start - TRIM_PAD_MS) : min(len(segment), end + TRIM_PAD_MS)]


def _linear16(samples: npt.NDArray[np.float64]) -> bytes:
    return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()


def _normalised(path: Path) -> npt.NDArray[np.float64]:
    segment = _trim(_decode(path))
    samples = _samples(segment)
    if samples.size == 0 or not np.any(samples):
        raise ValueError("the recording is silent")
    rms = float(np.sqrt(np.mean(samples**2)))
    peak = float(np.max(np.abs(samples)))
    gain_db = TARGET_DBFS - 20 * np.log10(rms / 32768.0)
    # Speech with a large crest factor would clip at the loudness target; give up a
    # little loudness rather than distort.
    gain_db = min(gain_db, PEAK_CEILING_DBFS - 20 * np.log10(peak / 32768.0))
    result: npt.NDArray[np.float64] = samples * 10 ** (gain_db / 20)
    return result


def u8_to_wav(data: bytes, path: Path) -> None:
    """Write u8 8 kHz mono PCM as a 16-bit WAV (for listening and for peers' test files)."""
    s16 = (np.frombuffer(data, dtype=np.uint8).astype(np.int16) - SILENCE_U8) << 8
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(s16.astype("<i2").tobytes())


def wav_to_u8(path: Path) -> bytes:
    """Read any recording as u8 8 kHz mono PCM, without trimming or level changes."""
    return _quantise(_samples(_decode(path)))


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


class PromptLibrary:
    """The prompt clips of the configured languages, ready for ``write_audio``.

    ``conversions`` counts clips converted from their source (disk-cache misses).
    Safe to share between call threads.
    """

    def __init__(self, root: Path, cache_dir: Path, languages: Sequence[str]) -> None:
        self.root = root
        self.cache_dir = cache_dir
        self.languages = tuple(languages)
        self.conversions = 0
        self._lock = threading.Lock()
        # (lang, name, format) -> ((path, size, mtime_ns), audio)
        self._memory: dict[tuple[str, str, str], tuple[tuple[Path, int, int], bytes]] = {}
        # path -> ((size, mtime_ns), sha256 hex)
        self._hashes: dict[Path, tuple[tuple[int, int], str]] = {}

    # -- sources ---------------------------------------------------------------------

    def source(self, lang: str, name: str) -> Path:
        """The one recording of clip ``name`` in ``lang``, whatever its extension."""
        if lang not in self.languages:
            raise PromptError(f"language not configured ({', '.join(self.languages)})", lang=lang)
        if not _CLIP_NAME.fullmatch(name):
            raise PromptError("not a clip name", lang=lang, clip=name)
        lang_dir = self.root / lang
        found = sorted(
            p
            for p in (lang_dir.glob(f"{name}.*") if lang_dir.is_dir() else ())
            if p.stem == name and p.is_file()
        )
        if not found:
            raise PromptError(f"no recording {lang_dir / name}.*", lang=lang, clip=name)
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise PromptError(f"more than one recording ({names})", lang=lang, clip=name)
        return found[0]

    def _content_hash(self, path: Path, stat: os.stat_result) -> str:
        key = (stat.st_size, stat.st_mtime_ns)
        known = self._hashes.get(path)
        if known is not None and known[0] == key:
            return known[1]
        digest = _file_hash(path)
        self._hashes[path] = (key, digest)
        return digest

    # -- clips -----------------------------------------------------------------------

    def clip(self, lang: str, name: str) -> bytes:
        """Clip ``name`` in ``lang`` as u8 8 kHz mono PCM."""
        return self._clip(lang, name, "u8")

    def clip_linear16(self, lang: str, name: str) -> bytes:
        """Clip ``name`` in ``lang`` as signed 16-bit little-endian 8 kHz mono PCM."""
        return self._clip(lang, name, "s16")

    def _clip(self, lang: str, name: str, fmt: str) -> bytes:
        path = self.source(lang, name)
        with self._lock:
            try:
                stat = path.stat()
            except OSError as exc:
                raise PromptError(f"cannot read {path}: {exc}", lang=lang, clip=name) from exc
            stamp = (path, stat.st_size, stat.st_mtime_ns)
            cached = self._memory.get((lang, name, fmt))
            if cached is not None and cached[0] == stamp:
                return cached[1]
            data = self._load(lang, name, path, stat, fmt)
            self._memory[(lang, name, fmt)] = (stamp, data)
            return data

    def _load(
        self, lang: str, name: str, path: Path, stat: os.stat_result, fmt: str = "u8"
    ) -> bytes:
        digest = self._content_hash(path, stat)
        key = hashlib.sha256(f"{_PIPELINE}|{path.resolve()}|{digest}".encode()).hexdigest()[:20]
        cache_dir = self.cache_dir / lang
        try:
            return (cache_dir / f"{name}.{key}.{fmt}").read_bytes()
        except FileNotFoundError:
            pass
        try:
            samples = _normalised(path)  # one decode gives both formats
        except _DECODE_ERRORS as exc:
            raise PromptError(f"cannot decode {path}: {exc}", lang=lang, clip=name) from exc
        both = {"u8": _quantise(samples), "s16": _linear16(samples)}
        self.conversions += 1
        logger.debug("converted prompt %s/%s from %s (%.2f s)", lang, name, path,
                     len(both["u8"]) / 8000)  # fmt: skip
        cache_dir.mkdir(parents=True, exist_ok=True)
        for kind, data in both.items():
            cache_file = cache_dir / f"{name}.{key}.{kind}"
            tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, cache_file)
            for stale in cache_dir.glob(f"{name}.*.{kind}"):
                if stale != cache_file:
                    stale.unlink(missing_ok=True)
        return both[fmt]

    def render(self, lang: str, parts: Sequence[str]) -> bytes:
        """Concatenate ``parts`` with a short pause between them (u8).

        A part is a clip name or ``"number:<digits>"``, read digit by digit."""
        return self._render(lang, parts, self.clip, silence)

    def render_linear16(self, lang: str, parts: Sequence[str]) -> bytes:
        """``render`` in signed 16-bit little-endian: no 8-bit step before G.711."""
        return self._render(lang, parts, self.clip_linear16, silence_linear16)

    def _render(
        self,
        lang: str,
        parts: Sequence[str],
        clip: Callable[[str, str], bytes],
        quiet: Callable[[int], bytes],
    ) -> bytes:
        pieces: list[bytes] = []
        for part in parts:
            if part.startswith("number:"):
                digits = part.removeprefix("number:")
                if not digits or not all(c in "0123456789" for c in digits):
                    raise PromptError(f"not a number part: {part!r}", lang=lang, clip=part)
                gap = quiet(DIGIT_GAP_MS)
                pieces.append(gap.join(clip(lang, digit_clip(d)) for d in digits))
            else:
                pieces.append(clip(lang, part))
        return quiet(PART_PAUSE_MS).join(pieces)

    # -- bookkeeping -----------------------------------------------------------------

    def version(self, lang: str) -> str:
        """Short hash of the recordings of ``lang`` (file names and contents)."""
        if lang not in self.languages:
            raise PromptError(f"language not configured ({', '.join(self.languages)})", lang=lang)
        lang_dir = self.root / lang
        if not lang_dir.is_dir():
            raise PromptError(f"no directory {lang_dir}", lang=lang)
        h = hashlib.sha256()
        with self._lock:
            for path in sorted(lang_dir.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    digest = self._content_hash(path, path.stat())
                    h.update(f"{path.name}\0{digest}\n".encode())
        return h.hexdigest()[:12]

    def check(self, max_seconds: float = 30.0) -> list[str]:
        """Problems with the catalog's clips in every configured language; empty means OK."""
        problems: list[str] = []
        for lang in self.languages:
            for name in CLIP_NAMES:
                try:
                    data = self.clip(lang, name)
                except PromptError as exc:
                    problems.append(str(exc))
                    continue
                seconds = len(data) / SAMPLE_RATE
                if seconds > max_seconds:
                    problems.append(
                        f"prompt {lang}/{name}: {seconds:.1f} s, longer than {max_seconds:.1f} s"
                    )
        return problems
