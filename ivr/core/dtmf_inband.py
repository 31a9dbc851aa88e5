"""In-band DTMF: keys heard as tones in the received audio (trunks that send neither
RFC 4733 events nor SIP INFO).

Two stages, so that timing and frequency precision do not fight each other:

1. Every 10 ms block (80 samples) is measured with Goertzel at the eight DTMF frequencies. A
   block is a *candidate* for a key when one low-group and one high-group frequency stand out
   in their groups, are loud enough and carry most of the block's energy. Consecutive blocks
   with the same candidate form a run.
2. Once a run has :data:`MIN_STRONG_BLOCKS` blocks within 3 dB of its loudest (so 30 ms of
   full-level tone: a 40 ms tone always has them, a 23 ms one never), those blocks are
   analysed as one segment with a zero-padded, Hann-windowed FFT: each tone's frequency is
   estimated to a few hertz and must be within :data:`MAX_FREQ_DEVIATION` of its nominal
   value, the twist must be within limits, and the two tones must hold most of the energy
   (speech has many harmonics; this is what keeps speech from "pressing" keys).

A run reports its key once; a break of a full block without the tone (a 40 ms pause always
contains three) ends it, so the next tone is a new press. Limits follow ITU-T Q.24 (and the
usual reading of its twist: the low-group tone may be up to 8 dB louder than the high-group
one, "normal twist", or up to 4 dB quieter, "reverse twist").

Samples are linear 16-bit scale floats (``feed``) or G.711 bytes, mu-law (``feed_ulaw``) or
A-law (``feed_alaw``).
Pure numpy; no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
BLOCK = 80  # 10 ms
LOW = (697.0, 770.0, 852.0, 941.0)
HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
FREQS = np.array(LOW + HIGH)

# 0 dBm0 as a sine amplitude in 16-bit linear scale (G.711: a full-scale sine is +3.17 dBm0,
# and the mu-law decoder's full scale is 32124).
DBM0_AMPLITUDE = 32124.0 * 10 ** (-3.17 / 20)
MIN_TONE_DBM0 = -40.0  # each tone; -30 dBm0 signals are well inside
MAX_FREQ_DEVIATION = 0.025  # accept 1.5 %, reject 3.5 %: decide half way
MAX_NORMAL_TWIST_DB = 9.0  # low tone louder than high: accept 8 dB, with a margin
MAX_REVERSE_TWIST_DB = 5.0  # high tone louder than low: accept 4 dB, with a margin
MIN_STRONG_BLOCKS = 3
BLOCK_MIN_GROUP_RATIO = 2.0  # best frequency of a group over the second best (power)
BLOCK_MIN_TONE_SHARE = 0.5  # of the block's energy
SEGMENT_MIN_TONE_SHARE = 0.75  # of the segment's energy, in the two tones' main lobes
_NFFT = 4096

_t = np.arange(BLOCK) / SAMPLE_RATE
_COS = np.cos(2 * np.pi * np.outer(FREQS, _t))
_SIN = np.sin(2 * np.pi * np.outer(FREQS, _t))
_MIN_BLOCK_POWER = (DBM0_AMPLITUDE * 10 ** (MIN_TONE_DBM0 / 20) * BLOCK / 2) ** 2


def _ulaw_table() -> npt.NDArray[np.float64]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.float64)


def _alaw_table() -> npt.NDArray[np.float64]:
    codes = np.arange(256, dtype=np.int32) ^ 0x55  # even bits are sent inverted
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.float64)  # 1 = positive


ULAW = _ulaw_table()
ALAW = _alaw_table()


def ulaw_decode(payload: bytes) -> npt.NDArray[np.float64]:
    """G.711 mu-law bytes -> linear 16-bit scale floats."""
    return ULAW[np.frombuffer(payload, dtype=np.uint8)]


def alaw_decode(payload: bytes) -> npt.NDArray[np.float64]:
    """G.711 A-law bytes -> linear 16-bit scale floats."""
    return ALAW[np.frombuffer(payload, dtype=np.uint8)]


@dataclass
class _Run:
    key: str
    powers: list[float] = field(default_factory=list)
    blocks: list[npt.NDArray[np.float64]] = field(default_factory=list)
    reported: bool = False
    rejected: bool = False


def _block_candidate(block: npt.NDArray[np.float64]) -> tuple[str, float] | None:
    """The key this 10 ms block looks like and its tone power, or None."""
    re = _COS @ block
    im = _SIN @ block
    power = re * re + im * im
    low, high = power[:4], power[4:]
    li, hi = int(np.argmax(low)), int(np.argmax(high))
    pl, ph = low[li], high[hi]
    if pl < _MIN_BLOCK_POWER or ph < _MIN_BLOCK_POWER:
        return None
    if pl < BLOCK_MIN_GROUP_RATIO * np.partition(low, -2)[-2]:
        return None
    if ph < BLOCK_MIN_GROUP_RATIO * np.partition(high, -2)[-2]:
        return None
    energy = float(block @ block)
    # a sine's energy over the block is 2|X|^2 / N
    if (pl + ph) * 2 / BLOCK < BLOCK_MIN_TONE_SHARE * energy:
        return None
    return KEYS[li][hi], float(pl + ph)


_COS_SIN_T = np.concatenate((_COS, _SIN)).T  # (80, 16): both blocks' Goertzel sums at once


def candidate_frames(samples: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """For many 20 ms frames at once (shape (K, 160)): which ones have a 10 ms block that
    ``_block_candidate`` could accept. The same tests, vectorised over the batch: one
    matrix product for K frames instead of ~20 numpy calls per block. A frame found False
    is, for the detector, the same as a pause (see ``InbandDetector.gap``)."""
    blocks = samples.reshape(-1, BLOCK)
    sums = blocks @ _COS_SIN_T
    power = sums[:, :8] ** 2 + sums[:, 8:] ** 2
    low, high = np.sort(power[:, :4], axis=1), np.sort(power[:, 4:], axis=1)
    pl, ph = low[:, -1], high[:, -1]
    energy = np.einsum("ij,ij->i", blocks, blocks)
    ok = (pl >= _MIN_BLOCK_POWER) & (ph >= _MIN_BLOCK_POWER)
    ok &= (pl >= BLOCK_MIN_GROUP_RATIO * low[:, -2]) & (ph >= BLOCK_MIN_GROUP_RATIO * high[:, -2])
    ok &= (pl + ph) * 2 / BLOCK >= BLOCK_MIN_TONE_SHARE * energy
    return np.asarray(ok.reshape(samples.shape[0], -1).any(axis=1), dtype=np.bool_)


_HANN_LOBE_HZ = 2.0 * SAMPLE_RATE  # Hann main lobe half width is 2 bins of the segment


def _peak(
    spectrum: npt.NDArray[np.float64], lo_hz: float, hi_hz: float
) -> tuple[float, float, int]:
    """Interpolated peak frequency, its power and its bin, within [lo_hz, hi_hz]."""
    lo, hi = int(lo_hz * _NFFT / SAMPLE_RATE), int(hi_hz * _NFFT / SAMPLE_RATE) + 1
    k = lo + int(np.argmax(spectrum[lo:hi]))
    a, b, c = (float(np.log(spectrum[i] + 1e-12)) for i in (k - 1, k, k + 1))
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
    return (k + shift) * SAMPLE_RATE / _NFFT, float(spectrum[k]), k


def validate(samples: npt.NDArray[np.float64]) -> str | None:
    """The key a segment of tone (>= 30 ms) carries, or None if it fails a Q.24-style limit."""
    n = samples.size
    window = np.hanning(n)
    spectrum = np.abs(np.fft.rfft(samples * window, _NFFT)) ** 2
    f_low, p_low, k_low = _peak(spectrum, 600.0, 1050.0)
    f_high, p_high, k_high = _peak(spectrum, 1100.0, 1750.0)
    nominal_low = min(LOW, key=lambda f: abs(f - f_low))
    nominal_high = min(HIGH, key=lambda f: abs(f - f_high))
    if abs(f_low / nominal_low - 1) > MAX_FREQ_DEVIATION:
        return None
    if abs(f_high / nominal_high - 1) > MAX_FREQ_DEVIATION:
        return None
    twist_db = 10 * np.log10(p_low / p_high)
    if twist_db > MAX_NORMAL_TWIST_DB or -twist_db > MAX_REVERSE_TWIST_DB:
        return None
    lobe = int(np.ceil(_HANN_LOBE_HZ / n * _NFFT / SAMPLE_RATE))
    tones = spectrum[k_low - lobe : k_low + lobe + 1].sum()
    tones += spectrum[k_high - lobe : k_high + lobe + 1].sum()
    if tones < SEGMENT_MIN_TONE_SHARE * spectrum.sum():
        return None
    return KEYS[LOW.index(nominal_low)][HIGH.index(nominal_high)]


_EMPTY = np.zeros(0)
_EMPTY.flags.writeable = False


class InbandDetector:
    """Feed received audio in any chunk size; get each key once, as soon as it is sure."""

    def __init__(self) -> None:
        self._pending = _EMPTY
        self._run: _Run | None = None

    def gap(self) -> None:
        """The audio had a pause (a frame skipped as too quiet to hold a key): the tone run in
        progress ends, exactly as a block of silence would end it."""
        self._run = None
        if self._pending.size:  # (called for most received frames: allocate nothing)
            self._pending = _EMPTY

    def feed_ulaw(self, payload: bytes) -> list[str]:
        return self.feed(ulaw_decode(payload))

    def feed_alaw(self, payload: bytes) -> list[str]:
        return self.feed(alaw_decode(payload))

    def feed(self, samples: npt.NDArray[np.float64]) -> list[str]:
        data = np.concatenate((self._pending, samples)) if self._pending.size else samples
        keys: list[str] = []
        whole = data.size - data.size % BLOCK
        for start in range(0, whole, BLOCK):
            key = self._block(data[start : start + BLOCK])
            if key is not None:
                keys.append(key)
        self._pending = data[whole:].copy()
        return keys

    def _block(self, block: npt.NDArray[np.float64]) -> str | None:
        found = _block_candidate(block)
        run = self._run
        if found is None or run is None or run.key != found[0]:
            self._run = run = _Run(found[0]) if found is not None else None
        if found is None or run is None:
            return None
        run.powers.append(found[1])
        run.blocks.append(block)
        if run.reported or run.rejected:
            return None
        loudest = max(run.powers)
        strong = [b for b, p in zip(run.blocks, run.powers, strict=True) if p >= loudest / 2]
        if len(strong) < MIN_STRONG_BLOCKS:
            return None
        key = validate(np.concatenate(strong))
        if key == run.key:
            run.reported = True
            return key
        if len(run.blocks) >= MIN_STRONG_BLOCKS + 2:
            run.rejected = True  # keep a long non-DTMF sound from being re-analysed forever
        return None
