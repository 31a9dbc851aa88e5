"""One runner per SQLite database; jobs that run once across PostgreSQL nodes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ivr.core.errors import RunnerLocked
from storage.db import make_engine
from storage.locks import run_once, runner_lock


def test_a_second_runner_on_one_sqlite_file_refuses(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ivr.sqlite'}")
    with runner_lock(engine):
        with pytest.raises(RunnerLocked, match="another ivr-rating runner"), runner_lock(engine):
            pass
        # Another process too.
        code = (
            "import sys\nfrom storage.db import make_engine\n"
            "from storage.locks import runner_lock\n"
            f"e = make_engine('sqlite:///{tmp_path / 'ivr.sqlite'}')\n"
            "try:\n    with runner_lock(e): sys.exit(0)\n"
            "except Exception as exc: print(exc); sys.exit(7)\n"
        )
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode == 7 and "already works on" in other.stdout
    with runner_lock(engine):  # released when the first one ended
        pass
    engine.dispose()


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ivr.sqlite'}"
    code = (
        "import os, signal; from storage.db import make_engine; "
        "from storage.locks import runner_lock\n"
        f"with runner_lock(make_engine('{url}')): os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    # Killed by its own SIGKILL while holding the lock (not an import error or a refusal).
    assert child.returncode == -signal.SIGKILL, child.stderr
    engine = make_engine(url)
    with runner_lock(engine):
        pass
    engine.dispose()


def test_run_once_across_nodes(engine: Engine, db_url: str) -> None:
    other = make_engine(db_url)
    with run_once(engine, "import") as first:
        assert first
        with run_once(other, "import") as second:
            assert second is (engine.url.get_backend_name() == "sqlite")
    with run_once(other, "import") as again:
        assert again
    other.dispose()
