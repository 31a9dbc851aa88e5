"""Synthesise placeholder prompt recordings with espeak-ng.

The committed ``prompts/<lang>/*.wav`` files come from here until studio recordings
replace them. Regenerate with ``python -m prompts.build`` (needs espeak-ng and ffmpeg).
Output is 8 kHz mono 16-bit WAV: the library does trimming, loudness and the u8
conversion, so the files stay plain and small.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pydub import AudioSegment
from pydub.generators import Sine

from prompts.catalog import CLIPS, LANGUAGES, Clip
from prompts.library import SAMPLE_RATE, PromptError

logger = logging.getLogger(__name__)

TONE_MS = 400
# Words per minute; espeak's default is 175, too fast for the elderly people we call.
SPEED_WPM = 140
# Output options that keep the files byte-identical across runs: no encoder tag, no metadata.
_WAV_PARAMETERS = [
    "-ar",
    str(SAMPLE_RATE),
    "-ac",
    "1",
    "-map_metadata",
    "-1",
    "-fflags",
    "+bitexact",
    "-flags:a",
    "+bitexact",
]


def synthesise(text: str, lang: str, *, espeak: str = "espeak-ng", wpm: int = SPEED_WPM) -> bytes:
    """Run espeak-ng on ``text`` and return the WAV it produced (22050 Hz as espeak makes it)."""
    exe = shutil.which(espeak)
    if exe is None:
        raise PromptError(
            f"{espeak} not found on PATH: install the espeak-ng package to build placeholders",
            lang=lang,
        )
    proc = subprocess.run(
        [exe, "-v", lang, "-s", str(wpm), "--stdout", text],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        detail = proc.stderr.decode(errors="replace").strip()
        raise PromptError(f"espeak-ng failed (exit {proc.returncode}): {detail}", lang=lang)
    return proc.stdout


def build_placeholders(
    root: Path,
    languages: Sequence[str] = LANGUAGES,
    *,
    espeak: str = "espeak-ng",
    clips: Sequence[Clip] = CLIPS,
) -> list[Path]:
    """Write ``root/<lang>/<clip>.wav`` for every catalog clip (or those of ``clips``); return
    the paths written."""
    written: list[Path] = []
    for lang in languages:
        out_dir = root / lang
        out_dir.mkdir(parents=True, exist_ok=True)
        for clip in clips:
            if lang not in clip.text:
                raise PromptError("no text in the catalog", lang=lang, clip=clip.name)
            if clip.tone_hz is not None:
                segment = Sine(clip.tone_hz).to_audio_segment(duration=TONE_MS, volume=-6.0)
            else:
                try:
                    wav = synthesise(
                        clip.tts_text(lang), lang, espeak=espeak, wpm=clip.wpm or SPEED_WPM
                    )
                except PromptError as exc:
                    raise PromptError(exc.message, lang=lang, clip=clip.name) from exc
                segment = AudioSegment.from_file(io.BytesIO(wav), format="wav")
            path = out_dir / f"{clip.name}.wav"
            # pydub leaves a file it opened itself unclosed: give it our own handle.
            with path.open("wb") as out:
                segment.export(out, format="wav", codec="pcm_s16le", parameters=_WAV_PARAMETERS)
            logger.info("built placeholder %s (%.2f s)", path, len(segment) / 1000)
            written.append(path)
    return written


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_placeholders(Path(__file__).resolve().parent)


if __name__ == "__main__":
    main()
