"""What every benchmark shares: servers, timing rounds, and the ratio table."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def pouchdb() -> Iterator[str]:
    """A fresh in-memory pouchdb-server 4.2.0; yields its URL."""
    from tests._servers.pouchdb import PouchDBServer

    with PouchDBServer() as server:
        yield server.url


@contextlib.contextmanager
def embedded(tmp: Path | None = None) -> Iterator[str]:
    """cloudsync's embedded server on a temporary data dir; yields its URL."""
    import tempfile

    from cloudsync.server.testing import serve

    with tempfile.TemporaryDirectory(prefix="cloudsync-bench-") as data, serve(data_dir=data) as server:
        yield server.url


SERVERS: dict[str, Callable[[], contextlib.AbstractContextManager[str]]] = {
    "embedded": embedded,
    "pouchdb": pouchdb,
}


def arguments(doc: str | None, quick: str, servers: str = ",".join(SERVERS)) -> argparse.ArgumentParser:
    """A benchmark's command line: ``--quick`` (what it does says ``quick``) and
    ``--servers`` (comma-separated names of ``SERVERS``)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--servers", default=servers, help=f"comma-separated, of {', '.join(SERVERS)}")
    return parser


def each_server(names: str) -> Iterator[tuple[str, str]]:
    """``(name, url)`` for each comma-separated server name, each started fresh and
    stopped before the next."""
    for name in names.split(","):
        with SERVERS[name]() as url:
            yield name, url


def run_child(module: str, *args: str, timeout: float = 600) -> dict:
    """Run ``python -m module --child args...`` in a fresh process (so its peak RSS is its
    own) and return the JSON object it prints last."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run(
        [sys.executable, "-m", module, "--child", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT),
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module} child failed ({' '.join(args)}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rounds(runs: dict[str, Callable[[], int]], count: int, warmup: int = 0) -> dict[str, list[float]]:
    """Items/s of every contender in each of ``count`` rounds. The contenders run in turn,
    in reverse order every other round, so that drift in machine load affects them alike
    and neighbours stay neighbours. ``warmup`` rounds run first, untimed (a server whose
    JIT warms up, like pouchdb-server, is slower in its first rounds)."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    rates: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for _ in range(count):
        for name in order:
            started = time.perf_counter()
            items = runs[name]()
            rates[name].append(items / (time.perf_counter() - started))
        order.reverse()
    return rates


def interleaved(runs: dict[str, Callable[[], int]], count: int, warmup: int = 0) -> dict[str, float]:
    """Best items/s per contender over ``rounds(runs, count, warmup)``."""
    return {name: max(values) for name, values in rounds(runs, count, warmup).items()}


def paired_ratio(rates: dict[str, list[float]], name: str, baselines: tuple[str, ...]) -> float:
    """Median over rounds of ``name``'s rate divided by the best of ``baselines`` in the
    same round: each ratio compares runs made seconds apart, so a server or VM that swings
    between rounds (pouchdb-server's own rate moves 2x) moves both sides of it alike."""
    return median([value / max(rates[b][i] for b in baselines) for i, value in enumerate(rates[name])])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Row:
    server: str
    measure: str
    contender: str
    value: float
    unit: str
    ratio: float | None = None  # value / baseline value, or baseline / value for "lower is better"
    baseline: str = ""
    target: str = ""
    met: bool | None = None


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n## {title}\n")
    print("| server | measure | contender | value | ratio | vs | target | met |")
    print("|---|---|---|---:|---:|---|---|---|")
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        met = "" if r.met is None else ("yes" if r.met else "NO")
        print(f"| {r.server} | {r.measure} | {r.contender} | {r.value:,.1f} {r.unit} | {ratio} | {r.baseline} | {r.target} | {met} |")
    sys.stdout.flush()
