"""The real console process for browser tests: started on a configuration, waited for until it
answers, stopped afterwards. Its output goes to ``console.log`` in the given folder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.helpers import free_tcp_port, wait_until


@contextmanager
def console_process(
    config_path: Path, workdir: Path, env: Mapping[str, str]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Yield the console's base URL and its process, once it serves the sign-in page."""
    port = free_tcp_port()
    log_path = workdir / "console.log"
    command = [sys.executable, "-m", "ivr.entry.cli", "--config", str(config_path), "console",
               "--listen", f"127.0.0.1:{port}"]  # fmt: skip
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(env))
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{base}/login", timeout=2).status_code == 200
        except requests.RequestException:
            return proc.poll() is not None

    try:
        wait_until(up, 60, "the console to answer")
        assert proc.poll() is None, log_path.read_text()
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)
