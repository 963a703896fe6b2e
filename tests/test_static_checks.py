"""The code stays clean by the checkers the project uses: ruff (style, imports, likely
bugs) over everything, mypy over the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing() -> None:
    """ruff check passes on the package, the tests and the benchmarks."""
    result = run("ruff", "check", "cloudsync", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_finds_nothing() -> None:
    """mypy passes on the package."""
    result = run("mypy", "cloudsync")
    assert result.returncode == 0, result.stdout + result.stderr
