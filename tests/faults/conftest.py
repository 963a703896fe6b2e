"""The bounded fault campaign: run once per session (only the lanes the selected tests
need), on the session's embedded server and pouchdb-server, plus an embedded server of
its own to kill -9 and restart. Tests then assert on each lane's figures."""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.faults import scenario

SEED_ENV = "CLOUDSYNC_FAULT_SEED"


@dataclass
class Campaign:
    seed: int
    seconds: float
    results: dict[str, scenario.LaneResult]

    def lane(self, name: str) -> scenario.LaneResult:
        if name not in self.results:
            pytest.fail(f"lane {name} did not run (campaign seed {self.seed})")
        return self.results[name]

    def why(self, result: scenario.LaneResult) -> str:
        """Failure context: what to rerun with, and the lane's figures."""
        return f"\nrerun with {SEED_ENV}={self.seed}\n{result.summary()}"


def _needed_lanes(session: pytest.Session) -> set[str]:
    """The lanes the selected tests look at (a test names a lane, or a server-transport)."""
    names = set(scenario.all_lane_names())
    wanted: set[str] = set()
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        lane = callspec.params.get("lane")
        if lane is not None:
            wanted.add(lane)
        target = callspec.params.get("target")
        if target is not None:
            wanted |= {n for n in names if n.startswith(target + "-")}
    return wanted


@pytest.fixture(scope="session")
def kill_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """An embedded server of the fault suite's own, killed (-9) and restarted on the same
    port and data dir by the kill lanes."""
    testing = pytest.importorskip("cloudsync.server.testing")
    with testing.serve(data_dir=tmp_path_factory.mktemp("fault-kill")) as server:
        yield server


@pytest.fixture(scope="session")
def fault_campaign(request: pytest.FixtureRequest) -> Campaign:
    """Every needed lane's result, from one concurrent run of the bounded campaign."""
    seed = int(os.environ.get(SEED_ENV) or random.randrange(2**32))
    wanted = _needed_lanes(request.session)
    lanes = scenario.plan(seed, only=wanted)
    urls = {}
    if any(spec.server == "embedded" for spec in lanes):
        urls["embedded"] = request.getfixturevalue("embedded_url")
    if any(spec.server == "pouchdb" for spec in lanes):
        urls["pouchdb"] = request.getfixturevalue("pouchdb_url")
    kill = request.getfixturevalue("kill_server") if any(s.kind == scenario.KILL for s in lanes) else None
    started = time.monotonic()
    results = scenario.run_campaign(lanes, urls, kill_server=kill, concurrency=8, budget=60.0)
    seconds = time.monotonic() - started
    total = sum(r.injected for r in results)
    sys.stderr.write(f"\nfault campaign: seed {seed}, {len(results)} lanes, {total} faults in {seconds:.1f}s\n")
    return Campaign(seed, seconds, {r.spec.name: r for r in results})
