"""A citizen who presses a key and then speaks: the RTP capture SIPp plays for it.

One pcap carries the whole call from the far end: G.711 silence from the answer, the key as
RFC 4733 events at ``key_at``, the known recording (``comment_speech.wav``: espeak-ng saying
a sentence, 8 kHz 16-bit) at ``speech_at``, then silence. One stream, as a real phone sends,
so what we record can be compared with what was said.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ivr.core.dtmf_inband import SAMPLE_RATE
from lab import dtmf_vectors as dv

SPEECH_WAV = Path(__file__).resolve().parent / "comment_speech.wav"
_EVENT_KEYS = "0123456789*#ABCD"


def speech_samples() -> dv.Samples:
    """The sentence the speaking citizen says (16-bit scale)."""
    return dv.read_wav(SPEECH_WAV)


def spoken_through_line(law: str) -> dv.Samples:
    """What the citizen's words become after one G.711 encoding (what we can receive)."""
    from ivr.core.dtmf_inband import alaw_decode, ulaw_decode

    samples = speech_samples()
    if law == "pcma":
        return alaw_decode(dv.alaw_encode(samples))
    return ulaw_decode(dv.ulaw_encode(samples))


def speaking_pcap(
    law: str, key: str, key_at: float, speech_at: float, tail_s: float = 15.0, cut_at: float = 0.0
) -> bytes:
    """The far end's RTP: ``law`` ("pcmu"/"pcma") audio, ``key`` at ``key_at`` s, the
    recording at ``speech_at`` s, ``tail_s`` of silence after it. ``cut_at`` (> 0): the
    stream stops there (the citizen hangs up mid-sentence)."""
    speech = speech_samples()
    total = speech_at + speech.size / SAMPLE_RATE + tail_s
    samples = np.zeros(int(total * SAMPLE_RATE))
    start = int(speech_at * SAMPLE_RATE)
    samples[start : start + speech.size] = speech
    if cut_at > 0:
        samples = samples[: int(cut_at * SAMPLE_RATE)]
    encode, pt = (dv.alaw_encode, 8) if law == "pcma" else (dv.ulaw_encode, 0)
    data = encode(samples)
    packets: list[tuple[float, bytes]] = []
    seq = 0
    for i in range(0, len(data) - 159, 160):
        packets.append((i / 8000, dv._rtp(pt, seq, i, data[i : i + 160])))
        seq += 1
    # RFC 4733: 100 ms of the key, updates every 20 ms, three end packets; its own timestamp
    event, ts = _EVENT_KEYS.index(key), int(key_at * 8000)
    for j in range(1, 6):
        body = struct.pack("!BBH", event, 10, j * 160)
        packets.append((key_at + (j - 1) * 0.02 + 0.001, dv._rtp(101, 0, ts, body, j == 1)))
    for j in range(3):
        body = struct.pack("!BBH", event, 0x80 | 10, 5 * 160)
        packets.append((key_at + (4 + j) * 0.02 + 0.002, dv._rtp(101, 0, ts, body)))
    packets.sort(key=lambda p: p[0])
    # one sequence for the stream, as a phone numbers its packets
    renumbered = [(at, rtp[:2] + struct.pack("!H", n) + rtp[4:]) for n, (at, rtp) in
                  enumerate(packets)]  # fmt: skip
    return dv._pcap(renumbered)
