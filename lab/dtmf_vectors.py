"""Test vectors for the in-band DTMF detector: 8 kHz 16-bit WAV files plus ``manifest.json``.

Regenerate the shipped set with ``python -m lab.dtmf_vectors tests/data/dtmf``; the output
is deterministic (fixed noise seed). Every signal goes through G.711 mu-law and back, as it
would on the line. The manifest gives, per file, the keys a conforming detector reports.

Also writes RTP captures (``pcap``) of keys for SIPp's ``play_pcap_audio``: tones as PCMU or PCMA
audio, and RFC 4733 events on any payload type.
"""

from __future__ import annotations

import json
import struct
import sys
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ivr.core.dtmf_inband import DBM0_AMPLITUDE, HIGH, KEYS, LOW, SAMPLE_RATE, ulaw_decode

Samples = npt.NDArray[np.float64]


def key_freqs(key: str) -> tuple[float, float]:
    for row, keys in enumerate(KEYS):
        if key in keys:
            return LOW[row], HIGH[keys.index(key)]
    raise ValueError(f"not a DTMF key: {key!r}")


def tone(
    key: str,
    ms: float,
    *,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
    deviation: float = 0.0,
) -> Samples:
    """One key: each tone at ``level_dbm0``; ``twist_db`` > 0 makes the low tone louder
    (normal twist) by lowering the high one; ``deviation`` shifts both frequencies."""
    low, high = key_freqs(key)
    n = int(round(ms * SAMPLE_RATE / 1000))
    t = np.arange(n) / SAMPLE_RATE
    a_low = DBM0_AMPLITUDE * 10 ** (level_dbm0 / 20)
    a_high = a_low * 10 ** (-twist_db / 20)
    if twist_db < 0:  # reverse twist: the low tone is the quieter one
        a_low, a_high = a_low * 10 ** (twist_db / 20), a_low
    f = 1 + deviation
    out: Samples = a_low * np.sin(2 * np.pi * low * f * t) + a_high * np.sin(
        2 * np.pi * high * f * t + 1.0
    )
    return out


def gap(ms: float) -> Samples:
    return np.zeros(int(round(ms * SAMPLE_RATE / 1000)))


def join(*parts: Samples) -> Samples:
    out: Samples = np.concatenate(parts)
    return out


def add_noise(signal: Samples, snr_db: float, rng: np.random.Generator) -> Samples:
    """White noise at ``snr_db`` below the power of the signal's tone parts."""
    active = signal[np.abs(signal) > 0]
    power = float(np.mean(active**2)) if active.size else 1.0
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), signal.size)
    out: Samples = signal + noise
    return out


def ulaw_encode(samples: Samples) -> bytes:
    """Linear 16-bit scale -> G.711 mu-law (the standard segment encoder)."""
    x = np.clip(np.rint(samples), -32635, 32635).astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.abs(x) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    code = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return bytes(code.astype(np.uint8).tobytes())


def alaw_encode(samples: Samples) -> bytes:
    """Linear 16-bit scale -> G.711 A-law (the standard segment encoder)."""
    x = np.clip(np.rint(samples), -32768, 32767).astype(np.int32)
    sign = np.where(x >= 0, 0x80, 0)  # A-law: the sign bit set is positive
    mag = np.where(x >= 0, x, -x - 1) >> 3
    exponent = np.clip(np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4, 0, 7)
    mantissa = np.where(exponent == 0, mag >> 1, mag >> exponent) & 0x0F
    code = (sign | (exponent << 4) | mantissa) ^ 0x55  # even bits inverted
    return bytes(code.astype(np.uint8).tobytes())


def through_line(samples: Samples) -> Samples:
    return ulaw_decode(ulaw_encode(samples))


def write_wav(path: Path, samples: Samples) -> None:
    pcm = np.clip(np.rint(samples), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())


def read_wav(path: Path) -> Samples:
    with wave.open(str(path), "rb") as f:
        if f.getframerate() != SAMPLE_RATE or f.getnchannels() != 1 or f.getsampwidth() != 2:
            raise ValueError(f"{path}: not 8 kHz mono 16-bit")
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float64)


@dataclass(frozen=True)
class Vector:
    name: str
    keys: str  # what a conforming detector reports
    what: str
    signal: Samples


def _seq(keys: str, on_ms: float, off_ms: float, **kw: float) -> Samples:
    parts: list[Samples] = [gap(100)]
    for key in keys:
        parts += [tone(key, on_ms, **kw), gap(off_ms)]
    parts.append(gap(100))
    return np.concatenate(parts)


def vectors() -> list[Vector]:
    rng = np.random.default_rng(4)
    all_keys = "123A456B789C*0#D"
    v: list[Vector] = [
        Vector("all_keys", all_keys, "every key, 60 ms on / 60 ms off, -10 dBm0 per tone",
               _seq(all_keys, 60, 60)),
        Vector("dur_40ms", "5" * 4, "40 ms tones (Q.24: accept)", _seq("5555", 40, 60)),
        Vector("dur_23ms", "", "23 ms tones (Q.24: reject)", _seq("5555", 23, 60)),
        Vector("dur_20ms", "", "20 ms tones", _seq("1397", 20, 60)),
        Vector("pause_40ms", "7" * 5, "same key 5 times, 50 ms on / 40 ms pause",
               _seq("77777", 50, 40)),
        Vector("snr_15db", "159#", "15 dB SNR white noise, 50 ms tones",
               add_noise(_seq("159#", 50, 50), 15.0, rng)),
        Vector("snr_15db_all", all_keys, "15 dB SNR, every key",
               add_noise(_seq(all_keys, 50, 50), 15.0, rng)),
        Vector("level_-30dbm0", "2580", "-30 dBm0 per tone", _seq("2580", 50, 50, level_dbm0=-30)),
        Vector("level_-33dbm0", "2580", "-33 dBm0 per tone (-30 dBm0 both)",
               _seq("2580", 50, 50, level_dbm0=-33)),
    ]  # fmt: skip
    for dev in (0.015, -0.015):
        tag = f"{dev * 100:+.1f}".replace(".", "p")
        v.append(Vector(f"freq_{tag}pct", all_keys, f"both tones off by {dev:+.1%} (accept)",
                        _seq(all_keys, 60, 60, deviation=dev)))  # fmt: skip
    for dev in (0.035, -0.035):
        tag = f"{dev * 100:+.1f}".replace(".", "p")
        v.append(Vector(f"freq_{tag}pct", "", f"both tones off by {dev:+.1%} (reject)",
                        _seq(all_keys, 60, 60, deviation=dev)))  # fmt: skip
    v += [
        Vector("twist_normal_8db", all_keys, "low tone 8 dB louder (accept)",
               _seq(all_keys, 60, 60, twist_db=8.0)),
        Vector("twist_reverse_4db", all_keys, "high tone 4 dB louder (accept)",
               _seq(all_keys, 60, 60, twist_db=-4.0)),
        Vector("twist_normal_12db", "", "low tone 12 dB louder (reject)",
               _seq(all_keys, 60, 60, twist_db=12.0)),
        Vector("twist_reverse_8db", "", "high tone 8 dB louder (reject)",
               _seq(all_keys, 60, 60, twist_db=-8.0)),
    ]  # fmt: skip
    return [Vector(x.name, x.keys, x.what, through_line(x.signal)) for x in v]


# ---- RTP captures for SIPp play_pcap_audio ---------------------------------------------------
def _pcap(packets: Iterable[tuple[float, bytes]]) -> bytes:
    """A pcap (Ethernet/IPv4/UDP 127.0.0.1:4000 -> :4001) of RTP payloads at given times."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ident, (at, rtp) in enumerate(packets):
        udp = struct.pack("!HHHH", 4000, 4001, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))  # fmt: skip
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        sec, usec = int(at), int(round((at - int(at)) * 1e6))
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    return b"".join(out)


def _rtp(pt: int, seq: int, ts: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq, ts, 0x1234) + payload


def pcmu_pcap(samples: Samples) -> bytes:
    """The audio as 20 ms PCMU packets (payload type 0)."""
    return _g711_pcap(ulaw_encode(samples), 0)


def pcma_pcap(samples: Samples) -> bytes:
    """The audio as 20 ms PCMA packets (payload type 8)."""
    return _g711_pcap(alaw_encode(samples), 8)


def _g711_pcap(data: bytes, pt: int) -> bytes:
    frames = [data[i : i + 160] for i in range(0, len(data) - 159, 160)]
    return _pcap((i * 0.02, _rtp(pt, i, i * 160, f)) for i, f in enumerate(frames))


def event_pcap(key: str, pt: int, duration_ms: int = 100) -> bytes:
    """RFC 4733 telephone-event for ``key`` on payload type ``pt``: marker on the first
    packet, an update every 20 ms, three end packets."""
    event = "0123456789*#ABCD".index(key)
    packets: list[tuple[float, bytes]] = []
    steps = duration_ms // 20
    for i in range(1, steps + 1):
        body = struct.pack("!BBH", event, 10, i * 160)
        packets.append(((i - 1) * 0.02, _rtp(pt, i, 0, body, marker=i == 1)))
    for j in range(3):
        body = struct.pack("!BBH", event, 0x80 | 10, steps * 160)
        packets.append(((steps - 1 + j) * 0.02 + 0.001, _rtp(pt, steps + 1 + j, 0, body)))
    return _pcap(packets)


def write_all(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for vec in vectors():
        write_wav(out / f"{vec.name}.wav", vec.signal)
        manifest.append({"file": f"{vec.name}.wav", "keys": vec.keys, "what": vec.what})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write_all(Path(sys.argv[1]))


def talk_off_speech(min_seconds: float = 180.0, espeak: str = "espeak-ng") -> Samples:
    """At least ``min_seconds`` of espeak-ng speech (ru, be; several speeds and pitches) from
    the prompt catalog's scripts, through the line: the corpus no key may be heard in."""
    import shutil
    import subprocess

    from prompts.catalog import CLIPS

    exe = shutil.which(espeak)
    if exe is None:
        raise FileNotFoundError(f"{espeak} not found: apt-get install espeak-ng")
    parts: list[Samples] = []
    total = 0.0
    variants = [(lang, speed, pitch) for pitch in (30, 50, 80) for speed in (120, 170)
                for lang in ("ru", "be")]  # fmt: skip
    while total < min_seconds:
        for lang, speed, pitch in variants:
            text = " ".join(c.tts_text(lang) for c in CLIPS)
            wav = subprocess.run(
                [exe, "-v", lang, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                capture_output=True, check=True,
            ).stdout  # fmt: skip
            raw = np.frombuffer(wav[44:], dtype="<i2").astype(np.float64)
            # espeak speaks at 22050 Hz: take it to 8 kHz (linear interpolation after a crude
            # low-pass is enough for a talk-off corpus)
            smooth = np.convolve(raw, np.ones(3) / 3, mode="same")
            n = int(smooth.size * SAMPLE_RATE / 22050)
            resampled = np.interp(np.arange(n) * 22050 / SAMPLE_RATE, np.arange(smooth.size),
                                  smooth)  # fmt: skip
            peak = float(np.max(np.abs(resampled))) or 1.0
            parts.append(resampled * (DBM0_AMPLITUDE * 1.2 / peak))
            total += n / SAMPLE_RATE
            if total >= min_seconds:
                break
    return through_line(np.concatenate(parts))
