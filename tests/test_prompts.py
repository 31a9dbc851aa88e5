"""Prompt clips: the committed recordings, their u8 conversion, caching, render and check.

The reference vector ``tests/data/prompts_number12_ru.u8`` is the rendered "number:12"
from the fixed inputs in ``tests/data/prompts``. Regenerate it only on purpose, after
a deliberate change to the conversion: ``IVR_REGENERATE_REFERENCES=1 pytest ...``.
"""

from __future__ import annotations

import os
import shutil
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pydub import AudioSegment
from pydub.generators import Sine

from ivr.core.errors import IvrError
from prompts.build import build_placeholders
from prompts.catalog import CLIP_NAMES, CLIPS, LANGUAGES
from prompts.library import (
    DIGIT_GAP_MS,
    PART_PAUSE_MS,
    PEAK_CEILING_DBFS,
    SAMPLE_RATE,
    TARGET_DBFS,
    PromptError,
    PromptLibrary,
    silence,
    u8_to_wav,
    wav_to_u8,
)

PROMPTS_ROOT = Path(__file__).resolve().parent.parent / "prompts"
DATA = Path(__file__).resolve().parent / "data"
# Speech clips (the tone before a comment is a sine: its own test).
ALL_CLIPS = [(lang, name) for lang in LANGUAGES for name in CLIP_NAMES if name != "tone"]
ALL_IDS = [f"{lang}-{name}" for lang, name in ALL_CLIPS]
# espeak-ng and ffmpeg: programs outside the virtualenv (tests/conftest.py)
TOOLS = pytest.mark.tools


def read_wav16(path: Path) -> tuple[int, int, int, npt.NDArray[np.float64]]:
    with wave.open(str(path), "rb") as w:
        frames = w.readframes(w.getnframes())
        return (
            w.getframerate(),
            w.getnchannels(),
            w.getsampwidth(),
            np.frombuffer(frames, dtype="<i2").astype(np.float64),
        )


def centred(data: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128


def db(x: float) -> float:
    return float(20 * np.log10(x / 128))


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> PromptLibrary:
    return PromptLibrary(PROMPTS_ROOT, tmp_path_factory.mktemp("cache"), LANGUAGES)


@pytest.fixture
def ru_copy(tmp_path: Path) -> Path:
    """A writable copy of the Russian recordings."""
    root = tmp_path / "prompts"
    shutil.copytree(PROMPTS_ROOT / "ru", root / "ru")
    return root


# -- the committed recordings ------------------------------------------------------------


@pytest.mark.parametrize(("lang", "name"), ALL_CLIPS, ids=ALL_IDS)
def test_committed_recording_is_8k_mono_16bit(lang: str, name: str) -> None:
    rate, channels, width, samples = read_wav16(PROMPTS_ROOT / lang / f"{name}.wav")
    assert (rate, channels, width) == (SAMPLE_RATE, 1, 2)
    assert samples.size > SAMPLE_RATE // 10


def test_catalog_has_text_for_every_language() -> None:
    assert len(set(CLIP_NAMES)) == len(CLIP_NAMES)
    for clip in CLIPS:
        for lang in LANGUAGES:
            assert clip.script(lang).strip(), (clip.name, lang)


def test_committed_set_is_small_and_passes_check(library: PromptLibrary) -> None:
    total = sum(p.stat().st_size for p in PROMPTS_ROOT.glob("*/*.wav"))
    # 77 clips a language (digits, 31 days, 12 months, categories) as 16-bit 8 kHz WAV
    assert total < 5_000_000
    assert library.check() == []


@pytest.mark.parametrize(("lang", "name"), ALL_CLIPS, ids=ALL_IDS)
def test_clip_is_trimmed_normalised_u8(library: PromptLibrary, lang: str, name: str) -> None:
    _, _, _, source = read_wav16(PROMPTS_ROOT / lang / f"{name}.wav")
    loud = np.flatnonzero(np.abs(source) > np.abs(source).max() / 100)  # within 40 dB of peak
    speech_s = (loud[-1] - loud[0] + 1) / SAMPLE_RATE

    data = library.clip(lang, name)
    s = centred(data)
    seconds = len(data) / SAMPLE_RATE
    # Trimming keeps everything within 40 dB of the peak, plus a short margin.
    assert speech_s <= seconds <= speech_s + 0.2
    assert seconds <= source.size / SAMPLE_RATE
    assert abs(s.mean()) < 1.0
    assert 0 not in data and 255 not in data  # never clipped
    rms = db(float(np.sqrt(np.mean(s**2))))
    peak = db(float(np.abs(s).max()))
    assert TARGET_DBFS - 3.0 <= rms <= TARGET_DBFS + 0.5
    assert PEAK_CEILING_DBFS - 10.0 <= peak <= PEAK_CEILING_DBFS + 0.1


# -- render ------------------------------------------------------------------------------


def test_render_number_is_digit_by_digit(library: PromptLibrary) -> None:
    pause = b"\x80" * (SAMPLE_RATE * PART_PAUSE_MS // 1000)
    gap = b"\x80" * (SAMPLE_RATE * DIGIT_GAP_MS // 1000)
    assert len(pause) == 1200 and len(gap) == 960
    clip = library.clip
    expected = (
        clip("ru", "about_request")
        + pause
        + clip("ru", "digit_5")
        + gap
        + clip("ru", "digit_0")
        + gap
        + clip("ru", "digit_7")
    )
    assert library.render("ru", ["about_request", "number:507"]) == expected


def test_render_parts_are_separated_by_pause(library: PromptLibrary) -> None:
    got = library.render("be", ["greeting", "question"])
    assert got == library.clip("be", "greeting") + silence(150) + library.clip("be", "question")


@pytest.mark.parametrize(
    ("lang", "parts", "clip"),
    [
        ("ru", ["number:"], "number:"),
        ("ru", ["number:12a"], "number:12a"),
        ("ru", ["number:-1"], "number:-1"),
        ("ru", ["greeting", "no_such_clip"], "no_such_clip"),
        ("ru", ["../be/greeting"], "../be/greeting"),
        ("pl", ["greeting"], None),
    ],
    ids=["empty-number", "letter-in-number", "negative", "unknown-clip", "path", "unknown-lang"],
)
def test_render_rejects_bad_parts(
    library: PromptLibrary, lang: str, parts: list[str], clip: str | None
) -> None:
    with pytest.raises(PromptError) as info:
        library.render(lang, parts)
    assert isinstance(info.value, IvrError)
    assert info.value.lang == lang and info.value.clip == clip
    assert lang in str(info.value)


def test_reference_number_12(tmp_path: Path) -> None:
    """Rendered "number:12" from fixed inputs against the saved vector."""
    lib = PromptLibrary(DATA / "prompts", tmp_path, ["ru"])
    got = lib.render("ru", ["number:12"])
    reference = DATA / "prompts_number12_ru.u8"
    if os.environ.get("IVR_REGENERATE_REFERENCES"):
        reference.write_bytes(got)
    assert got == reference.read_bytes()


# -- caching -----------------------------------------------------------------------------


def test_disk_cache_reused_and_refreshed_on_change(ru_copy: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = PromptLibrary(ru_copy, cache, ["ru"])
    original = first.clip("ru", "digit_1")
    assert first.conversions == 1
    assert first.clip("ru", "digit_1") == original and first.conversions == 1  # memory
    (cache_file,) = (cache / "ru").glob("digit_1.*.u8")
    cache_mtime = cache_file.stat().st_mtime_ns

    second = PromptLibrary(ru_copy, cache, ["ru"])
    assert second.clip("ru", "digit_1") == original
    assert second.conversions == 0
    assert cache_file.stat().st_mtime_ns == cache_mtime

    # A studio drops in a new recording: the running library notices, converts once.
    source = ru_copy / "ru" / "digit_1.wav"
    shutil.copyfile(ru_copy / "ru" / "digit_8.wav", source)
    changed = second.clip("ru", "digit_1")
    assert changed != original
    assert changed == PromptLibrary(ru_copy, tmp_path / "fresh", ["ru"]).clip("ru", "digit_8")
    assert second.conversions == 1
    assert [p.name for p in (cache / "ru").glob("digit_1.*.u8")] != [cache_file.name]
    assert not cache_file.exists()  # the stale entry is gone


def test_disk_cache_keyed_by_content_not_only_mtime(ru_copy: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    source = ru_copy / "ru" / "digit_3.wav"
    before = PromptLibrary(ru_copy, cache, ["ru"]).clip("ru", "digit_3")
    stat = source.stat()
    raw = bytearray(source.read_bytes())
    raw[44:] = (-np.frombuffer(bytes(raw[44:]), dtype="<i2")).astype("<i2").tobytes()
    source.write_bytes(bytes(raw))  # same size, inverted polarity
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    lib = PromptLibrary(ru_copy, cache, ["ru"])
    after = lib.clip("ru", "digit_3")
    assert lib.conversions == 1
    assert after != before


# -- check and version -------------------------------------------------------------------


def export(segment: AudioSegment, path: Path, fmt: str) -> None:
    with path.open("wb") as f:  # pydub does not close files it opens itself
        segment.export(f, format=fmt)


def _remove(root: Path) -> None:
    (root / "ru" / "question.wav").unlink()


def _garble(root: Path) -> None:
    (root / "ru" / "question.wav").write_bytes(b"RIFF this is not audio" * 10)


def _lengthen(root: Path) -> None:
    path = root / "ru" / "question.wav"
    with path.open("rb") as f:
        long = AudioSegment.from_file(f, format="wav") * 20
    export(long, path, "wav")


def _duplicate(root: Path) -> None:
    with (root / "ru" / "question.wav").open("rb") as f:
        export(AudioSegment.from_file(f, format="wav"), root / "ru" / "question.flac", "flac")


def _silent(root: Path) -> None:
    export(AudioSegment.silent(2000, frame_rate=SAMPLE_RATE), root / "ru" / "question.wav", "wav")


@pytest.mark.parametrize(
    ("mutate", "expected", "playable"),
    [
        pytest.param(_remove, "no recording", False, id="missing"),
        # pydub hands a WAV it cannot read to ffmpeg; a FLAC is written by ffmpeg
        pytest.param(_garble, "cannot decode", False, id="undecodable", marks=TOOLS),
        pytest.param(_lengthen, "longer than 30.0 s", True, id="too-long"),
        pytest.param(_duplicate, "more than one recording", False, id="ambiguous", marks=TOOLS),
        pytest.param(_silent, "silent", False, id="silent"),
    ],
)
def test_check_reports_problem(
    ru_copy: Path, tmp_path: Path, mutate: object, expected: str, playable: bool
) -> None:
    lib = PromptLibrary(ru_copy, tmp_path / "cache", ["ru"])
    assert lib.check() == []
    assert callable(mutate)
    mutate(ru_copy)
    problems = lib.check()
    assert len(problems) == 1, problems
    assert "ru/question" in problems[0] and expected in problems[0]
    if playable:  # too long is a warning for the operator, the clip still plays
        assert lib.clip("ru", "question")
        return
    with pytest.raises(PromptError) as info:
        lib.clip("ru", "question")
    assert (info.value.lang, info.value.clip) == ("ru", "question")


def test_check_reports_missing_language(ru_copy: Path, tmp_path: Path) -> None:
    problems = PromptLibrary(ru_copy, tmp_path / "cache", ["ru", "be"]).check()
    assert len(problems) == len(CLIP_NAMES)
    assert all("be/" in p for p in problems)


def test_version_tracks_content(ru_copy: Path, tmp_path: Path) -> None:
    lib = PromptLibrary(ru_copy, tmp_path / "cache", ["ru"])
    v1 = lib.version("ru")
    assert len(v1) == 12 and v1 == lib.version("ru")
    assert v1 == PromptLibrary(PROMPTS_ROOT, tmp_path / "c2", ["ru"]).version("ru")
    shutil.copyfile(ru_copy / "ru" / "digit_8.wav", ru_copy / "ru" / "digit_1.wav")
    v2 = lib.version("ru")
    assert v2 != v1
    (ru_copy / "ru" / "digit_1.wav").rename(ru_copy / "ru" / "digit_1.flac")
    assert lib.version("ru") not in (v1, v2)


def test_languages_have_distinct_versions(library: PromptLibrary) -> None:
    assert library.version("ru") != library.version("be")


# -- other source formats and the WAV helpers ---------------------------------------------


def tone_level(data: bytes, hz: float) -> float:
    """Amplitude of ``hz`` in u8 audio, relative to full scale, in dB."""
    s = centred(data)
    t = np.arange(s.size) / SAMPLE_RATE
    amp = 2 * abs(np.mean(s * np.exp(-2j * np.pi * hz * t)))
    return db(max(float(amp), 1e-9))


def test_wav_helpers_round_trip(tmp_path: Path, library: PromptLibrary) -> None:
    data = library.clip("ru", "digit_4")
    u8_to_wav(data, tmp_path / "out.wav")
    rate, channels, width, _ = read_wav16(tmp_path / "out.wav")
    assert (rate, channels, width) == (SAMPLE_RATE, 1, 2)
    assert wav_to_u8(tmp_path / "out.wav") == data


@TOOLS  # ffmpeg writes the sources and resamples them
@pytest.mark.parametrize(
    ("suffix", "rate", "channels"),
    [("wav", 48000, 2), ("wav", 44100, 1), ("flac", 16000, 1), ("ogg", 48000, 1)],
    ids=["wav-48k-stereo", "wav-44k1", "flac-16k", "ogg-48k"],
)
def test_other_sources_are_resampled_without_aliasing(
    tmp_path: Path, suffix: str, rate: int, channels: int
) -> None:
    # 1 kHz must pass; 5.5 kHz is above the 4 kHz Nyquist limit and must not fold
    # back to 2.5 kHz.
    wanted = Sine(1000, sample_rate=rate).to_audio_segment(1500, volume=-12)
    alias = Sine(5500, sample_rate=rate).to_audio_segment(1500, volume=-12)
    mix = wanted.overlay(alias).set_channels(channels)
    (tmp_path / "ru").mkdir()
    export(mix, tmp_path / "ru" / f"tone.{suffix}", suffix)

    lib = PromptLibrary(tmp_path, tmp_path / "cache", ["ru"])
    data = lib.clip("ru", "tone")
    assert abs(len(data) / SAMPLE_RATE - 1.5) < 0.1
    assert tone_level(data, 1000) > -20
    assert tone_level(data, 2500) < tone_level(data, 1000) - 30


# -- builder -----------------------------------------------------------------------------


def test_build_fails_clearly_without_espeak(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="espeak-ng-absent not found"):
        build_placeholders(tmp_path, ["ru"], espeak="espeak-ng-absent")


# Every clip built for real (espeak-ng, then ffmpeg: two processes a clip, seconds in all),
# a quarter of the catalog per case so that ``-n auto`` spreads them; together every clip.
BUILD_SLICES = 4


def test_the_build_slices_cover_the_catalog() -> None:
    sliced = [c.name for part in range(BUILD_SLICES) for c in CLIPS[part::BUILD_SLICES]]
    assert sorted(sliced) == sorted(CLIP_NAMES)


@TOOLS
@pytest.mark.parametrize("part", range(BUILD_SLICES))
def test_build_writes_every_clip(tmp_path: Path, part: int) -> None:
    clips = CLIPS[part::BUILD_SLICES]
    written = build_placeholders(tmp_path, ["be"], clips=clips)
    assert sorted(p.name for p in written) == sorted(f"{c.name}.wav" for c in clips)
    library = PromptLibrary(tmp_path, tmp_path / "cache", ["be"])
    for path in written:
        rate, channels, width, samples = read_wav16(path)
        assert (rate, channels, width) == (SAMPLE_RATE, 1, 2)
        _, _, _, committed = read_wav16(PROMPTS_ROOT / "be" / path.name)
        assert abs(samples.size - committed.size) < 0.15 * committed.size, path.name
        # What check() asks of each clip: it converts, and is not too long.
        assert len(library.clip("be", path.stem)) / SAMPLE_RATE <= 30.0, path.name


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_tone_before_a_comment_is_a_short_1khz_beep(library: PromptLibrary, lang: str) -> None:
    s = library.clip(lang, "tone")
    samples = np.frombuffer(s, dtype=np.uint8).astype(np.float64) - 128.0
    assert 0.3 <= len(samples) / SAMPLE_RATE <= 0.5
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(samples)
    assert abs(peak_hz - 1000) < 20


def test_linear16_render_is_the_u8_render_without_its_8_bit_step(tmp_path: Path) -> None:
    """One decode gives both; the 16-bit one quantised is exactly the u8 one, and the u8
    one's error against it is what the old path added before G.711."""
    lib = PromptLibrary(PROMPTS_ROOT, tmp_path, ["ru"])
    parts = ["greeting", "number:4071"]
    linear = np.frombuffer(lib.render_linear16("ru", parts), dtype="<i2").astype(np.float64)
    u8 = np.frombuffer(lib.render("ru", parts), dtype=np.uint8).astype(np.float64)
    assert lib.conversions == 5  # greeting and four digits, each decoded once
    assert linear.size == u8.size
    as_u8 = (u8 - 128) * 256
    assert np.abs(as_u8 - linear).max() <= 128.5  # half an 8-bit step
    snr_u8 = 10 * np.log10((linear**2).sum() / ((as_u8 - linear) ** 2).sum())
    assert snr_u8 < 45  # the 8-bit step alone caps the old path (G.711 itself: ~38 dB)
    print(f"u8 intermediate alone: {snr_u8:.1f} dB SNR")


def test_first_option_within_12_s_even_for_the_longest_request(library: PromptLibrary) -> None:
    """The script's length, not a timing: the longest request there is (its digits, date and
    category) still lets the citizen hear "press 1" within 12 s of answering (issue 14)."""
    import bench.first_option as bench

    for lang in LANGUAGES:
        longest = bench.longest_request(library, lang)
        assert bench.first_option_s(library, lang, longest) <= 12.0, lang
