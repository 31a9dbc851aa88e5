"""The in-band DTMF detector on the shipped vectors (tests/data/dtmf, ITU-T Q.24-style
limits), on minutes of speech, and the de-duplication of keys seen by two paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ivr.core.dtmf_inband import InbandDetector, alaw_decode, ulaw_decode, validate
from ivr.sip.api import KeyPress, KeySource
from ivr.sip.keys import DEDUPE_S, KeyCollector
from lab import dtmf_vectors as dv
from prompts.catalog import CLIP_NAMES
from prompts.library import PromptLibrary

VECTORS = Path(__file__).parent / "data" / "dtmf"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())


def detect(samples: np.ndarray, chunk: int = 160) -> str:
    det = InbandDetector()
    keys: list[str] = []
    for i in range(0, samples.size, chunk):
        keys += det.feed(samples[i : i + chunk])
    return "".join(keys)


@pytest.mark.parametrize("item", MANIFEST, ids=[m["file"] for m in MANIFEST])
def test_shipped_vector(item: dict[str, str]) -> None:
    assert detect(dv.read_wav(VECTORS / item["file"])) == item["keys"], item["what"]


def test_shipped_vectors_are_what_the_generator_makes() -> None:
    names = {v.name: v for v in dv.vectors()}
    assert sorted(f"{n}.wav" for n in names) == sorted(m["file"] for m in MANIFEST)
    for item in MANIFEST[:3]:
        shipped = dv.read_wav(VECTORS / item["file"])
        made = names[item["file"].removesuffix(".wav")].signal
        assert np.max(np.abs(shipped - np.rint(made))) <= 1


@pytest.mark.parametrize("chunk", [1, 80, 160, 237, 4000], ids=lambda c: f"chunk-{c}")
def test_the_chunking_of_the_audio_does_not_matter(chunk: int) -> None:
    assert detect(dv.read_wav(VECTORS / "all_keys.wav"), chunk) == "123A456B789C*0#D"


def test_mu_law_input_from_rtp() -> None:
    signal = dv.read_wav(VECTORS / "snr_15db.wav")
    payload = dv.ulaw_encode(signal)
    det = InbandDetector()
    keys = [k for i in range(0, len(payload), 160) for k in det.feed_ulaw(payload[i : i + 160])]
    assert "".join(keys) == "159#"


@pytest.mark.parametrize("item", MANIFEST, ids=[m["file"] for m in MANIFEST])
def test_a_law_input_from_rtp(item: dict[str, str]) -> None:
    """An A-law trunk (PCMA): every vector, sent A-law in 20 ms packets, gives the same keys."""
    payload = dv.alaw_encode(dv.read_wav(VECTORS / item["file"]))
    det = InbandDetector()
    keys = [k for i in range(0, len(payload), 160) for k in det.feed_alaw(payload[i : i + 160])]
    assert "".join(keys) == item["keys"], item["what"]


def test_g711_codecs_agree_with_audioop() -> None:
    """Our numpy G.711 decoders (the detector) and A-law encoder (the vectors) are standard."""
    import audioop  # the codec library pyVoIP uses (audioop-lts on Python >= 3.13)

    every = np.arange(-32768, 32768)
    pcm = every.astype("<i2").tobytes()
    assert dv.alaw_encode(every) == audioop.lin2alaw(pcm, 2)
    codes = bytes(range(256))
    assert list(alaw_decode(codes)) == list(np.frombuffer(audioop.alaw2lin(codes, 2), "<i2"))
    assert list(ulaw_decode(codes)) == list(np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2"))


@pytest.mark.parametrize(
    ("ms", "found"), [(40, True), (35, True), (23, False), (15, False)], ids=lambda x: str(x)
)
def test_duration_limit(ms: int, found: bool) -> None:
    signal = dv.through_line(np.concatenate([dv.gap(50), dv.tone("6", ms), dv.gap(50)]))
    assert detect(signal) == ("6" if found else "")


def test_a_long_press_is_one_key() -> None:
    signal = dv.through_line(np.concatenate([dv.gap(50), dv.tone("8", 2000), dv.gap(50)]))
    assert detect(signal) == "8"


def test_a_single_tone_is_no_key() -> None:
    t = np.arange(4000) / 8000
    assert detect(dv.through_line(8000 * np.sin(2 * np.pi * 697 * t))) == ""
    assert validate(8000 * np.sin(2 * np.pi * 1336 * t[:400])) is None


@pytest.mark.tools  # espeak-ng speaks the corpus
def test_no_key_in_minutes_of_speech() -> None:
    speech = dv.talk_off_speech(min_seconds=180.0)
    assert speech.size >= 180 * 8000
    assert detect(speech) == ""


def test_no_key_in_our_own_prompts_echoed_back(tmp_path: Path) -> None:
    root = Path(__file__).parent.parent / "prompts"
    lib = PromptLibrary(root, tmp_path, ["ru", "be"])

    for lang in ("ru", "be"):
        for name in CLIP_NAMES:
            u8 = np.frombuffer(lib.render(lang, [name]), dtype=np.uint8).astype(np.float64)
            assert detect(dv.through_line((u8 - 128) * 256)) == "", (lang, name)


# ---- one press, two paths ---------------------------------------------------------------------
class _Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_key_seen_by_two_paths_counts_once() -> None:
    clock = _Clock()
    keys = KeyCollector(clock)
    assert keys.add("1", KeySource.RFC4733)
    clock.t = 0.05
    assert not keys.add("1", KeySource.INBAND)  # the same press, heard in the audio too
    clock.t = 0.3
    assert keys.add("1", KeySource.RFC4733)  # a second press by the same path
    clock.t = 0.3 + DEDUPE_S + 0.01
    assert keys.add("1", KeySource.INBAND)  # long after: a new press
    assert keys.add("2", KeySource.SIP_INFO)
    assert keys.take() == [
        KeyPress("1", KeySource.RFC4733),
        KeyPress("1", KeySource.RFC4733),
        KeyPress("1", KeySource.INBAND),
        KeyPress("2", KeySource.SIP_INFO),
    ]
    assert keys.take() == []
