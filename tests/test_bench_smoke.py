"""The benchmarks still run: `python -m bench --quick` (tiny sizes, no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(600)  # as long as the run's own subprocess timeout: it starts a dozen servers
def test_every_benchmark_runs_in_quick_mode(tmp_path):
    """Each benchmark completes at tiny sizes and reports rows for every contender it names."""
    out = tmp_path / "quick.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"drain", "crud", "latency", "recovery", "memory", "fanout", "live_query", "writer",
                            "backup", "bulk", "replication"}
    assert all(results[name] for name in results), [name for name in results if not results[name]]
