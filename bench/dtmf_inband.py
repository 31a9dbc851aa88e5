"""In-band DTMF detector figures: microseconds per 20 ms frame, and accuracy on the shipped
vectors (tests/data/dtmf) and on minutes of espeak-ng speech (talk-off).

    .venv/bin/python bench/dtmf_inband.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.core.dtmf_inband import InbandDetector  # noqa: E402
from lab import dtmf_vectors as dv  # noqa: E402

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "data" / "dtmf"
FRAME = 160


def run(samples: np.ndarray) -> tuple[str, float, int]:
    det = InbandDetector()
    keys: list[str] = []
    frames = [samples[i : i + FRAME] for i in range(0, samples.size, FRAME)]
    started = time.perf_counter()
    for frame in frames:
        keys += det.feed(frame)
    return "".join(keys), time.perf_counter() - started, len(frames)


def main() -> None:
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    ok = 0
    expected_keys = found_keys = false_keys = 0
    for item in manifest:
        got, _, _ = run(dv.read_wav(VECTORS / item["file"]))
        ok += got == item["keys"]
        expected_keys += len(item["keys"])
        found_keys += len(got) if got == item["keys"] else 0
        false_keys += len(got) if not item["keys"] else 0
        print(f"  {'ok ' if got == item['keys'] else 'BAD'} {item['file']:24} "  # noqa: T201
              f"expected {item['keys']!r:20} got {got!r}")  # fmt: skip
    speech = dv.talk_off_speech(300.0)
    talk, elapsed, frames = run(speech)
    sys.stdout.write(
        f"vectors: {ok}/{len(manifest)} files exact; keys {found_keys}/{expected_keys}; "
        f"false keys in reject vectors: {false_keys}\n"
        f"talk-off: {speech.size / 8000:.0f} s of espeak-ng speech (ru, be): "
        f"{len(talk)} false keys\n"
        f"speed: {elapsed / frames * 1e6:.1f} us per 20 ms frame (speech; "
        f"{frames} frames, one core)\n"
    )
    tones = dv.read_wav(VECTORS / "all_keys.wav")
    tones = np.tile(tones, 20)
    _, elapsed, frames = run(tones)
    sys.stdout.write(f"speed: {elapsed / frames * 1e6:.1f} us per 20 ms frame (tones)\n")


if __name__ == "__main__":
    main()
