"""The suite's markers: every registered one is used (``--strict-markers`` refuses an
unregistered one), so that ``-m "not peers and not postgres"`` means what it says; and its one
wait, ``tests.helpers.wait_until``."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def registered_markers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines: list[str] = config["tool"]["pytest"]["ini_options"]["markers"]
    return [line.split(":", 1)[0].strip() for line in lines]


def test_the_selection_markers_are_registered() -> None:
    assert {"peers", "postgres", "tools"} <= set(registered_markers())


def test_every_registered_marker_is_used() -> None:
    sources = "\n".join(
        p.read_text()
        for p in sorted((ROOT / "tests").glob("*.py"))
        if p.name != Path(__file__).name
    )
    unused = [name for name in registered_markers() if f"pytest.mark.{name}" not in sources]
    assert unused == []


def test_every_browser_test_is_marked_tools() -> None:
    """Chromium is a program the virtualenv does not hold: a module that drives it is ``tools``
    (so also ``peers``, out of the fast selection)."""
    unmarked = [
        p.name
        for p in sorted((ROOT / "tests").glob("test_*.py"))
        if p.name != Path(__file__).name
        and "playwright" in (text := p.read_text())
        and not any(
            line.startswith("pytestmark") and "mark.tools" in line for line in text.splitlines()
        )
    ]
    assert unmarked == []


def test_the_one_wait_is_tests_helpers_wait_until() -> None:
    """A test waits on a condition through ``tests.helpers.wait_until`` (a deadline, a named
    condition): no ``wait*`` function of a test module polls in a loop of its own, and no test
    waits through the lab's own ``wait_for``."""
    others = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("wait"):
                if any(isinstance(n, ast.While) for n in ast.walk(node)):
                    others.append(f"{path.name}:{node.name}")
            if isinstance(node, ast.ImportFrom) and any(a.name == "wait_for" for a in node.names):
                others.append(f"{path.name}: imports {node.module}.wait_for")
    assert others == []
