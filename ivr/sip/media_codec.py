"""Audio to G.711 frames, once per law: what the media engine sends.

A prompt is turned into 160-byte frames of the law the far end chose when it is queued, never
per packet; cached by content, so a prompt played to 300 calls is encoded once. Clips go from
16-bit straight to G.711 (the old 8-bit unsigned step cost ~14 dB SNR, pitfall 11).
"""

from __future__ import annotations

import audioop  # C, and what pyVoIP itself uses (audioop-lts on Python >= 3.13)
import threading
from collections import OrderedDict
from typing import Any

import pyVoIP.VoIP  # noqa: F401  (pyVoIP must import VoIP before SIP: circular imports)
from pyVoIP import RTP

PTIME = 0.020
FRAME = 160  # samples (and G.711 bytes) per 20 ms packet
SILENCE = {"pcmu": b"\xff" * FRAME, "pcma": b"\xd5" * FRAME}

# pyVoIP's PayloadType members compare by value through a Python ``__eq__`` (~2 us each, three
# a packet); they are singletons, so per packet they are told apart by identity.
PCMU, PCMA, EVENT = RTP.PayloadType.PCMU, RTP.PayloadType.PCMA, RTP.PayloadType.EVENT


def law_of(payload_type: Any) -> str:
    return "pcma" if payload_type is PCMA else "pcmu"


_cache: OrderedDict[tuple[bytes, int, str], list[bytes]] = OrderedDict()
_cache_lock = threading.Lock()
# A prompt played to many calls (the question, the thanks) is encoded once; the opening,
# which names each call's own request, is encoded once per call. Bounded: RSS stays flat.
CACHE_ENTRIES = 32
ENCODE_PIECE = 50 * FRAME  # samples: one second


def encode_frames(audio: bytes, width: int, law: str) -> list[bytes]:
    """``audio`` (8 kHz mono linear PCM: ``width`` 1 = unsigned 8-bit, 2 = signed 16-bit
    little-endian) as 160-byte frames of ``law``; the last one padded with silence. Cached:
    the same audio in the same law is encoded once."""
    key = (audio, width, law)
    with _cache_lock:
        frames = _cache.get(key)
        if frames is not None:
            _cache.move_to_end(key)
            return frames
    coded = b"".join(
        _encode(audio[i : i + ENCODE_PIECE * width], width, law)
        for i in range(0, len(audio), ENCODE_PIECE * width)
    )  # in pieces: between two C calls the media loop can take the interpreter
    if len(coded) % FRAME:
        coded += SILENCE[law][: FRAME - len(coded) % FRAME]
    frames = [coded[i : i + FRAME] for i in range(0, len(coded), FRAME)]
    with _cache_lock:
        _cache[key] = frames
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return frames


def _encode(audio: bytes, width: int, law: str) -> bytes:
    linear = audio if width == 2 else audioop.lin2lin(audioop.bias(audio, 1, -128), 1, 2)
    return audioop.lin2alaw(linear, 2) if law == "pcma" else audioop.lin2ulaw(linear, 2)


class Chunk:
    """One played piece of audio and how far it has been sent."""

    __slots__ = ("audio", "width", "frames", "pos")

    def __init__(self, audio: bytes, width: int) -> None:
        self.audio, self.width, self.pos = audio, width, 0
        self.frames: dict[str, list[bytes]] = {}

    def frame(self, law: str) -> bytes | None:
        frames = self.frames.get(law)
        if frames is None:
            frames = self.frames[law] = encode_frames(self.audio, self.width, law)
        if self.pos >= len(frames):
            return None
        self.pos += 1
        return frames[self.pos - 1]

    @property
    def samples_left(self) -> int:
        return max(len(self.audio) // self.width - self.pos * FRAME, 0)
