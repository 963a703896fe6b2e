"""examples/top_orders.py, run for real against the embedded server it starts itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_top_orders_example_follows_the_writes():
    """The example draws the top orders, follows 20 random writes, and ends with the view
    equal to a fresh query (it exits non-zero otherwise)."""
    pytest.importorskip("cloudsync.server.testing")
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "top_orders.py"), "--writes", "20", "--pause", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("top ") >= 2 and "first view" in run.stdout
