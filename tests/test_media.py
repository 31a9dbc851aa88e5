"""The media engine: frames encoded once per law, packets on an absolute clock, what is heard."""

from __future__ import annotations

import audioop
import os
import socket
import threading
from typing import Any

import numpy as np
import pytest
from pyVoIP import RTP

from ivr.core.dtmf_inband import alaw_decode, ulaw_decode
from ivr.sip.api import KeySource
from ivr.sip.media import FRAME, MediaEngine, MediaStream, encode_frames, inband_batch
from tests.helpers import wait_until

ASSOC = {0: RTP.PayloadType.PCMU, 8: RTP.PayloadType.PCMA, 101: RTP.PayloadType.EVENT}


def tone16(seconds: float, freqs: tuple[float, ...] = (1000.0,), level: float = 8000.0) -> bytes:
    n = int(seconds * 8000)
    t = np.arange(n) / 8000
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs) * level
    return np.asarray(x).astype("<i2").tobytes()


def stream(keys: list[tuple[str, KeySource]] | None = None) -> MediaStream:
    sink = (lambda k, s: keys.append((k, s))) if keys is not None else None
    return MediaStream(MediaEngine(), dict(ASSOC), "127.0.0.1", 0, "127.0.0.1", 4000, sink)


def test_frames_are_160_bytes_of_the_law_padded_with_silence_and_encoded_once() -> None:
    audio = tone16(0.05)  # 400 samples: 2.5 frames
    frames = encode_frames(audio, 2, "pcmu")
    assert [len(f) for f in frames] == [FRAME] * 3
    assert frames[-1][80:] == b"\xff" * 80
    assert encode_frames(audio, 2, "pcmu") is frames  # cached
    alaw = encode_frames(audio, 2, "pcma")
    assert alaw[-1][80:] == b"\xd5" * 80
    back = alaw_decode(b"".join(alaw))[:400]
    assert np.abs(back - np.frombuffer(audio, "<i2")).max() < 300


def snr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    noise = decoded - reference
    return float(10 * np.log10((reference**2).sum() / (noise**2).sum()))


def test_sixteen_bit_straight_to_g711_beats_the_8_bit_step() -> None:
    """Speech-level audio (a -20 dBFS tone with a quiet tail): going 16-bit -> G.711 keeps
    G.711's quality; the old 16 -> u8 -> G.711 path loses it (printed for the report)."""
    audio = tone16(1.0, (440.0, 1330.0), level=1600.0) + tone16(1.0, (700.0,), level=200.0)
    ref = np.frombuffer(audio, "<i2").astype(np.float64)
    u8 = audioop.bias(audioop.lin2lin(audio, 2, 1), 1, 128)  # what the prompt library made
    old = ulaw_decode(b"".join(encode_frames(u8, 1, "pcmu")))[: ref.size]
    new = ulaw_decode(b"".join(encode_frames(audio, 2, "pcmu")))[: ref.size]
    gain = snr_db(ref, new) - snr_db(ref, old)
    print(f"SNR 16-bit->PCMU {snr_db(ref, new):.1f} dB, via u8 {snr_db(ref, old):.1f} dB")
    assert gain > 10


def test_packets_leave_on_an_absolute_clock_and_catch_up_after_a_late_wake() -> None:
    s = stream()
    s.t0 = 100.0
    sent: list[bytes] = []
    s.write_linear16(tone16(0.05))
    s.send_due(100.0, lambda data, target: sent.append(data))
    assert len(sent) == 1
    s.send_due(100.0999, lambda data, target: sent.append(data))  # woke 100 ms late
    assert len(sent) == 6 and s.next_due() == pytest.approx(100.12)
    seqs = [int.from_bytes(p[2:4], "big") for p in sent]
    stamps = [int.from_bytes(p[4:8], "big") for p in sent]
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    assert all((b - a) % 2**32 == FRAME for a, b in zip(stamps, stamps[1:], strict=False))
    assert [len(p) for p in sent] == [12 + FRAME] * 6
    assert sent[3][12:] == b"\xff" * FRAME  # the queue ran dry: silence, the clock goes on
    s.preference = RTP.PayloadType.PCMA
    s.send_due(100.12, lambda data, target: sent.append(data))
    assert sent[-1][1] == 8 and sent[-1][12:] == b"\xd5" * FRAME


def test_law_switch_mid_prompt_sends_the_rest_in_the_new_law() -> None:
    s = stream()
    s.write_linear16(tone16(0.06))
    first = s.queue[0].frame("pcmu")
    rest = s.queue[0].frame("pcma")
    assert first == encode_frames(s.queue[0].audio, 2, "pcmu")[0]
    assert rest == encode_frames(s.queue[0].audio, 2, "pcma")[1]


def rtp(pt: int, payload: bytes, ts: int = 1000, seq: int = 1) -> bytes:
    return bytes([0x80, pt]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + bytes(4) + payload


def test_inband_detector_runs_only_on_frames_past_the_energy_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys: list[tuple[str, KeySource]] = []
    s = stream(keys)
    fed: list[int] = []
    real = s.inband.feed
    monkeypatch.setattr(s.inband, "feed", lambda p: fed.append(1) or real(p))
    silence = b"\xff" * FRAME
    key5 = audioop.lin2ulaw(tone16(0.06, (770.0, 1336.0), level=3000.0), 2)
    frames = [silence] * 5 + [key5[i : i + FRAME] for i in (0, 160, 320)] + [silence] * 3
    frames += [key5[i : i + FRAME] for i in (0, 160, 320)]  # the same key again after a pause
    for n, frame in enumerate(frames):
        s.take(rtp(0, frame, ts=160 * n, seq=n), ("127.0.0.1", 4000))
        inband_batch([s])  # what the engine does after each round of reads
    assert keys == [("5", KeySource.INBAND), ("5", KeySource.INBAND)]
    assert len(fed) == 6  # the eight silent frames never reached the detector
    s.listening = False
    s.take(rtp(0, key5[:FRAME], ts=99999), ("127.0.0.1", 4000))
    inband_batch([s])
    assert len(fed) == 6


def test_telephone_events_by_timestamp_and_event_16_ignored() -> None:
    keys: list[tuple[str, KeySource]] = []
    s = stream(keys)
    for ts, event in ((1000, 16), (2000, 4), (2000, 4), (3000, 4)):
        s.take(rtp(101, bytes([event, 10, 0, 160]), ts=ts), ("127.0.0.1", 4000))
    assert keys == [("4", KeySource.RFC4733)] * 2


def test_engine_serves_many_streams_on_one_thread_over_loopback() -> None:
    engine = MediaEngine()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    engine.acquire()
    streams = [
        MediaStream(engine, dict(ASSOC), "127.0.0.1", 0, "127.0.0.1", port) for _ in range(20)
    ]
    try:
        for s in streams:
            s.start()
            s.write_linear16(tone16(0.2))
        got: dict[int, int] = {}
        sink.settimeout(5)

        def ten_from_each() -> bool:  # one packet received per poll
            packet = sink.recv(2048)
            ssrc = int.from_bytes(packet[8:12], "big")
            got[ssrc] = got.get(ssrc, 0) + 1
            return min(got.get(s.ssrc, 0) for s in streams) >= 10

        wait_until(ten_from_each, 10, "ten packets from each of the 20 streams", poll=0)
        assert engine.streams == 20
    finally:
        for s in streams:
            s.stop()
        engine.release()
        sink.close()
    assert engine.streams == 0
    assert all(s.sock is not None and s.sock.fileno() == -1 for s in streams)


def test_a_bug_in_one_packet_does_not_stop_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = MediaEngine()
    engine.acquire()
    s = MediaStream(engine, dict(ASSOC), "127.0.0.1", 0, "127.0.0.1", 9)
    calls: list[Any] = []

    def boom(packet: bytes, source: tuple[str, int]) -> None:
        calls.append(packet)
        raise RuntimeError("bug")

    try:
        s.start()
        monkeypatch.setattr(s, "take", boom)
        assert s.sock is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            for _ in range(3):
                peer.sendto(b"x" * 20, s.sock.getsockname())
            wait_until(lambda: len(calls) == 3, 5, "the three packets taken", poll=0.01)
        assert s.counters.malformed == 3
    finally:
        s.stop()
        engine.release()


def test_batched_first_stage_never_drops_a_frame_the_detector_would_use() -> None:
    """Frames the batch rejects have no candidate block: feeding them instead of a gap gives
    the detector the same keys (the DTMF vectors: every key, speech, noise, near misses)."""
    from ivr.core.dtmf_inband import InbandDetector, candidate_frames
    from lab.dtmf_vectors import through_line, vectors

    for vector in vectors():
        signal = through_line(vector.signal)  # as G.711 delivers it
        samples = signal[: signal.size // FRAME * FRAME].reshape(-1, FRAME)
        whole, gated = InbandDetector(), InbandDetector()
        expected = [k for frame in samples for k in whole.feed(frame)]
        got: list[str] = []
        for frame, maybe in zip(samples, candidate_frames(samples), strict=True):
            if maybe:
                got += gated.feed(frame)
            else:
                gated.gap()
        assert got == expected, vector.name


def test_stop_audio_while_the_loop_sends_never_breaks_the_stream() -> None:
    """drop_queued_audio swaps the queue from the call's thread; the loop must not index
    the new, empty one."""
    s = stream()
    s.t0 = 0.0
    sent: list[bytes] = []

    def send(data: bytes, target: tuple[str, int]) -> None:
        sent.append(data)
        s.drop_queued_audio()  # as if the runner barged in between two packets

    s.write_linear16(tone16(0.1))
    s.send_due(0.1, send)
    assert len(sent) == 6 and sent[-1][12:] == b"\xff" * FRAME


def frames_of(coded: bytes) -> list[bytes]:
    return [coded[i : i + FRAME] for i in range(0, len(coded) - FRAME + 1, FRAME)]


def vector_streams(
    encode: Any, pt: int
) -> tuple[list[Any], list[MediaStream], list[list[tuple[str, KeySource]]]]:
    """One stream per DTMF vector, each fed its vector in ``pt``'s law, all batched together
    as the engine does after each round of reads."""
    from lab.dtmf_vectors import vectors

    found: list[list[tuple[str, KeySource]]] = []
    streams = []
    for _ in vectors():
        found.append([])
        streams.append(stream(found[-1]))
    coded = [frames_of(encode(v.signal)) for v in vectors()]
    return coded, streams, found


def feed_rounds(coded: list[list[bytes]], streams: list[MediaStream], pt: int) -> None:
    for n in range(max(len(c) for c in coded)):
        for frames, s in zip(coded, streams, strict=True):
            if n < len(frames):
                s.take(rtp(pt, frames[n], ts=160 * n, seq=n), ("127.0.0.1", 4000))
        inband_batch(streams)


@pytest.mark.parametrize(("law", "pt"), [("ulaw", 0), ("alaw", 8)], ids=["pcmu", "pcma"])
def test_keys_of_every_dtmf_vector_found_while_listening_batched_across_streams(
    law: str, pt: int
) -> None:
    from lab import dtmf_vectors

    encode = dtmf_vectors.ulaw_encode if law == "ulaw" else dtmf_vectors.alaw_encode
    coded, streams, found = vector_streams(encode, pt)
    feed_rounds(coded, streams, pt)
    for vector, keys in zip(dtmf_vectors.vectors(), found, strict=True):
        assert "".join(k for k, _ in keys) == vector.keys, vector.name
        assert {src for _, src in keys} <= {KeySource.INBAND}


def test_no_detector_work_while_not_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not listening (no key awaited), received audio is not decoded, gated or analysed at
    all; RFC 4733 keys still count. Listening again, the same audio gives its keys."""
    import ivr.sip.media_stream as media
    from lab import dtmf_vectors

    work: list[str] = []

    def counted(name: str, real: Any) -> Any:
        return lambda *a: work.append(name) or real(*a)

    monkeypatch.setattr(media, "candidate_frames", counted("batch", media.candidate_frames))
    monkeypatch.setattr(media.audioop, "ulaw2lin", counted("decode", audioop.ulaw2lin))
    monkeypatch.setattr(media.audioop, "rms", counted("gate", audioop.rms))
    monkeypatch.setattr(media.InbandDetector, "feed", counted("detect", media.InbandDetector.feed))
    coded, streams, found = vector_streams(dtmf_vectors.ulaw_encode, 0)
    for s in streams:
        s.listening = False
    feed_rounds(coded, streams, 0)
    streams[0].take(rtp(101, bytes([5, 10, 0, 160]), ts=7), ("127.0.0.1", 4000))
    assert work == []
    assert found[0] == [("5", KeySource.RFC4733)] and not any(found[1:])
    for s in streams:
        s.listening = True
    feed_rounds(coded, streams, 0)
    assert {"batch", "decode", "gate", "detect"} <= set(work)
    assert ["".join(k for k, _ in f) for f in found[1:]] == [
        v.keys for v in dtmf_vectors.vectors()[1:]
    ]


def test_streams_start_on_the_loop_ticks_spread_over_the_phases() -> None:
    """Each stream's clock starts on a tick (so the loop wakes per tick, not per packet) of
    the least used phase among the next ones; packet n then leaves at t0 + n * 20 ms."""
    from ivr.sip.media import PHASES, SLOT

    engine = MediaEngine()
    engine._epoch = 1000.0
    starts = []
    for now in (1000.0, 1000.0, 1000.001, 1000.0123, 1000.02, 1000.02, 1000.02, 1000.03):
        t0, phase = engine.first_tick(now)
        engine._phase_load[phase] += 1
        starts.append((t0, phase))
        assert now <= t0 < now + PHASES * SLOT
        assert (t0 - 1000.0) / SLOT == pytest.approx(round((t0 - 1000.0) / SLOT))
    assert engine._phase_load == [2, 2, 2, 2]
    assert [p for _, p in starts[:4]] == [0, 1, 2, 3]


def test_media_thread_takes_the_highest_priority_it_is_allowed() -> None:
    from ivr.sip.media import MEDIA_RT_PRIORITY, raise_priority

    seen: list[tuple[str, int, int]] = []

    def media_thread() -> None:
        tid = threading.get_native_id()
        how = raise_priority()
        seen.append((how, os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)))

    thread = threading.Thread(target=media_thread)
    thread.start()
    thread.join()
    ((how, policy, nice),) = seen
    if how == "realtime":
        assert policy == os.SCHED_RR and os.sched_getparam(0).sched_priority == 0
        assert MEDIA_RT_PRIORITY > 0
    else:
        assert policy == os.SCHED_OTHER and (nice == -10 or how == "default")


def test_audio_is_encoded_by_the_thread_that_queues_it_not_by_the_loop() -> None:
    s = stream()
    s.preference = RTP.PayloadType.PCMA
    audio = tone16(0.3, (523.0,))
    s.write_linear16(audio)
    assert s.queue[0].frames == {"pcma": encode_frames(audio, 2, "pcma")}  # before any send
