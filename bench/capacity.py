"""Benchmark: how many survey calls one process carries with clean media.

    .venv/bin/python bench/capacity.py [--calls 20,50,100,200,300,500] [--hold 20]

For each N: N of the product's calls at once (``lab.load``: runner, call flow, real
prompts, ``PyVoipPhone`` direct to one SIPp UAS that answers and echoes RTP, nobody presses a
key), started at 20 calls/s. Our RTP towards SIPp is captured on loopback by a raw socket in
a separate process (AF_PACKET with a BPF filter, kernel timestamps; needs root), and over the
window when all calls are up it prints per-stream inter-packet intervals (p50, p99, max),
packets per second per stream (mean, min; 50 is exact 20 ms pacing), the product's CPU (% of
one core: this process and its media process, whose share is shown apart too) and RSS
(both), dropped calls and surveys without an outcome. Goals (issue 11): 300 calls with p99
<= 22 ms and rate within 0.5 % of 50; 20 calls within 0.2 %. ``IVR_MEDIA_IN_PROCESS=1``
measures the engine in this process instead, for comparison.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing as mp
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's lab/

from lab.load import run_load  # noqa: E402
from lab.peer_process import find_free_udp_port  # noqa: E402

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPING = 37  # software receive stamps, taken as the datagram is looped back
SOF_RX_SOFTWARE_AND_REPORT = (1 << 3) | (1 << 4)
PACKET_HOST = 0  # the loopback's received copy: stamped as it is looped back


def _bpf(dst_port: int) -> bytes:
    """Classic BPF: IPv4/UDP to ``dst_port``, as received on lo (each datagram once)."""
    ins = [
        (0x20, 0, 0, 0xFFFFF004),  # ld  pkttype (SKF_AD_OFF + SKF_AD_PKTTYPE)
        (0x15, 0, 7, PACKET_HOST),  # jeq HOST (each datagram once) else drop
        (0x28, 0, 0, 12),  # ldh ethertype
        (0x15, 0, 5, 0x0800),  # jeq IPv4
        (0x30, 0, 0, 23),  # ldb ip proto
        (0x15, 0, 3, 17),  # jeq UDP
        (0x28, 0, 0, 36),  # ldh udp dst port (IHL 5)
        (0x15, 0, 1, dst_port),
        (0x06, 0, 0, 96),  # ret 96 (accept)
        (0x06, 0, 0, 0),  # ret 0 (drop)
    ]
    return b"".join(struct.pack("HBBI", *i) for i in ins)


def capture(dst_port: int, out: str, ready: Any, stop: Any) -> None:
    """Child process: (kernel time, source port) of every datagram to ``dst_port`` on lo."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    code = _bpf(dst_port)
    buf = ctypes.create_string_buffer(code)
    prog = struct.pack("HL", len(code) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOF_RX_SOFTWARE_AND_REPORT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    sock.bind(("lo", 0))
    sock.settimeout(0.2)
    stamps: list[float] = []
    ports: list[int] = []
    ready.set()
    while not stop.is_set():
        try:
            data, anc, _flags, _addr = sock.recvmsg(128, 64)
        except TimeoutError:
            continue
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING:
                sec, nsec = struct.unpack("qq", value[:16])
                stamps.append(sec + nsec * 1e-9)
                ports.append(int.from_bytes(data[34:36], "big"))
    np.savez(out, t=np.array(stamps), port=np.array(ports))


def stream_stats(t: np.ndarray, port: np.ndarray, start: float, end: float) -> dict[str, float]:
    keep = (t >= start) & (t <= end)
    t, port = t[keep], port[keep]
    gaps, rates, fits = [], [], []
    for p in np.unique(port):
        ts = np.sort(t[port == p])
        if ts.size < 10:
            continue
        gaps.append(np.diff(ts) * 1000)
        rates.append((ts.size - 1) / (ts[-1] - ts[0]))
        # the long-run rate, not moved by a burst at either end of the window (a stall just
        # before it, caught up inside): the slope of arrival time over packet number
        fits.append(1.0 / np.polyfit(np.arange(ts.size), ts, 1)[0])
    if not gaps:
        return {"streams": 0}
    allg = np.concatenate(gaps)
    return {
        "streams": len(rates),
        "ipi_p50_ms": float(np.percentile(allg, 50)),
        "ipi_p99_ms": float(np.percentile(allg, 99)),
        "ipi_max_ms": float(allg.max()),
        "pps_mean": float(np.mean(rates)),
        "pps_min": float(np.min(rates)),
        "rate_error_pct": float(abs(np.mean(rates) - 50) / 50 * 100),
        "pps_fit_mean": float(np.mean(fits)),
        "fit_error_pct": float(abs(np.mean(fits) - 50) / 50 * 100),
    }


def one(calls: int, hold: float, rtp_base: int) -> dict[str, Any]:
    media_port = find_free_udp_port()
    with tempfile.TemporaryDirectory(prefix="ivr-capacity-") as tmp:
        out = str(Path(tmp) / "capture.npz")
        ctx = mp.get_context("spawn")
        ready, stop = ctx.Event(), ctx.Event()
        proc = ctx.Process(target=capture, args=(media_port, out, ready, stop))
        proc.start()
        ready.wait(10)
        try:
            result = run_load(
                Path(tmp) / "load", calls, hold, sipp_media_port=media_port, rtp_base=rtp_base
            )
        finally:
            stop.set()
            proc.join(30)
        cap = np.load(out)
        start = result.all_up_at
        stats = stream_stats(cap["t"], cap["port"], start, start + result.window_s)
    with open("/proc/loadavg") as f:
        load1 = float(f.read().split()[0])
    return {
        "calls": calls,
        "loadavg_1m": load1,  # the machine's load: other work competes for the cores
        **stats,
        "cpu_pct": 100 * result.cpu_s / max(result.window_s, 1e-9),
        "media_cpu_pct": 100 * result.media_cpu_s / max(result.window_s, 1e-9),
        "rss_mb": result.rss_mb,
        "window_s": result.window_s,
        "dropped": float(len(result.dropped) + len(result.errors)),
        "without_outcome": float(calls - len(result.outcomes)),
        "drops": ", ".join(
            f"{r.ended_by.value if r.ended_by else '-'}/{r.final_status}"
            for r in result.dropped[:5]
        )
        + "; ".join(result.errors[:3]),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", default="20,50,100,200,300,500")
    p.add_argument("--hold", type=float, default=20.0, help="seconds with all calls up")
    p.add_argument("--rtp-base", type=int, default=16000,
                   help="first RTP port of our calls (apart from the CI load test's)")  # fmt: skip
    args = p.parse_args()
    head = ("calls", "loadavg_1m", "streams", "ipi_p50_ms", "ipi_p99_ms", "ipi_max_ms",
            "pps_mean", "pps_min", "rate_error_pct", "fit_error_pct", "cpu_pct", "media_cpu_pct",
            "rss_mb", "dropped", "without_outcome")  # fmt: skip
    print(" ".join(f"{h:>14}" for h in head), flush=True)
    for n in (int(x) for x in args.calls.split(",")):
        row = one(n, args.hold, args.rtp_base)
        print(" ".join(f"{row.get(h, float('nan')):>14.3f}" for h in head), flush=True)
        if row["drops"]:
            print("  dropped (ended by/status/last event):", row["drops"], flush=True)
        print(json.dumps(row), flush=True)
        time.sleep(2)


if __name__ == "__main__":
    main()
