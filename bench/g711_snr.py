"""What the clips lose on the way to the line: signal-to-noise ratio of the shipped prompts
sent as G.711, straight from 16-bit (today's path) against through pyVoIP's unsigned 8-bit
intermediate (the old path), decoded back and compared with the 16-bit clip.

    .venv/bin/python bench/g711_snr.py
"""

from __future__ import annotations

import sys
import warnings
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # audioop: audioop-lts from 3.13
    import audioop  # what the media engine encodes with

from ivr.sip.media_stream import encode_frames  # noqa: E402


def clip(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1), path
        return w.readframes(w.getnframes())


def decoded(frames: list[bytes], law: str) -> np.ndarray:
    coded = b"".join(frames)
    linear = audioop.alaw2lin(coded, 2) if law == "pcma" else audioop.ulaw2lin(coded, 2)
    return np.frombuffer(linear, dtype="<i2").astype(np.float64)


def snr_db(reference: np.ndarray, heard: np.ndarray) -> float:
    heard = heard[: reference.size]
    noise = np.sum((reference - heard) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / noise)) if noise else float("inf")


def main() -> None:
    clips = sorted((ROOT / "prompts").glob("*/*.wav"))
    print(f"{len(clips)} clips (prompts/*/*.wav), SNR of the decoded line audio against the clip")
    print(
        f"{'law':<5} {'16-bit -> G.711':>16} {'via 8-bit':>10} {'gain':>6}   (dB, over all clips)"
    )
    for law in ("pcmu", "pcma"):
        ref_all, direct_all, old_all = [], [], []
        for path in clips:
            audio = clip(path)
            ref = np.frombuffer(audio, dtype="<i2").astype(np.float64)
            eight = audioop.bias(audioop.lin2lin(audio, 2, 1), 1, 128)  # pyVoIP's write_audio
            ref_all.append(ref)
            direct_all.append(decoded(encode_frames(audio, 2, law), law)[: ref.size])
            old_all.append(decoded(encode_frames(eight, 1, law), law)[: ref.size])
        ref = np.concatenate(ref_all)
        direct = snr_db(ref, np.concatenate(direct_all))
        old = snr_db(ref, np.concatenate(old_all))
        print(f"{law:<5} {direct:>16.1f} {old:>10.1f} {direct - old:>6.1f}")


if __name__ == "__main__":
    main()
