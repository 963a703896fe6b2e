"""PouchDB for Node (a client nobody here wrote) replicating with the embedded server and
with pouchdb-server: push, pull and live two-way sync end with both sides identical,
document by document, and the embedded server ends as pouchdb-server does.

The scenarios run in tests/node/pouchdb_replication.js; each prints both sides' state.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

SCRIPT = Path(__file__).resolve().parent.parent / "node" / "pouchdb_replication.js"
SCENARIOS = ("push", "pull", "sync")
DEADLINE = 120  # seconds a scenario may take (the script's own deadline is 60 s)
_names = itertools.count()


def run_scenario(server_url: str, scenario: str) -> dict[str, Any]:
    """Run `scenario` against a new database on `server_url`: ``{"local": ..., "remote": ...}``."""
    node = shutil.which("node")
    if node is None or not (SCRIPT.parent / "node_modules" / "pouchdb-node").exists():
        pytest.skip("PouchDB for Node is not installed (scripts/test installs tests/node)")
    url = f"{server_url}/pouchdb-{scenario}-{os.getpid()}-{next(_names)}"
    assert requests.put(url, timeout=10).status_code == 201
    proc = subprocess.Popen([node, str(SCRIPT), scenario, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")[-4000:]
    return json.loads(out)


@pytest.fixture(scope="module")
def outcome(pouchdb_url: str, embedded_url: str) -> Callable[[str, str], dict[str, Any]]:
    """The outcome of a scenario on a server (``"embedded"`` or ``"pouchdb"``), run once each."""
    urls = {"embedded": embedded_url, "pouchdb": pouchdb_url}
    done: dict[tuple[str, str], dict[str, Any]] = {}

    def get(server: str, scenario: str) -> dict[str, Any]:
        if (server, scenario) not in done:
            done[server, scenario] = run_scenario(urls[server], scenario)
        return done[server, scenario]

    return get


def shape(state: dict[str, Any]) -> dict[str, Any]:
    """A side's state without rev hashes (random in PouchDB): what two runs share."""

    def gen(rev: str) -> int:
        return int(rev.partition("-")[0])

    return {doc_id: {"winner": gen(doc["winner"]), "deleted": doc["deleted"],
                     "leaves": sorted((gen(leaf["rev"]), leaf["deleted"], json.dumps(leaf["body"], sort_keys=True))
                                      for leaf in doc["leaves"])}
            for doc_id, doc in state.items()}


@pytest.mark.parametrize("server", ["embedded", "pouchdb"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_both_sides_end_identical(outcome, server, scenario):
    """After the scenario, the local database and the server hold the same documents:
    same winners, same leaf revisions (open_revs=all), same bodies, deleted ones included."""
    result = outcome(server, scenario)
    assert result["local"] == result["remote"]
    assert len(result["remote"]) > 300


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_embedded_ends_as_pouchdb_server_does(outcome, scenario):
    """The embedded server ends each scenario in the same state as pouchdb-server (rev
    hashes aside): same documents, winners' generations, deletions, leaves and bodies."""
    assert shape(outcome("embedded", scenario)["remote"]) == shape(outcome("pouchdb", scenario)["remote"])


def test_push_carries_the_conflict(outcome):
    """A pushed conflict arrives with both branches, the same winner chosen on both sides."""
    doc = outcome("embedded", "push")["remote"]["conflicted"]
    assert [leaf["body"]["side"] for leaf in doc["leaves"]] == ["b", "c"]
    assert doc["winner"].startswith("2-c")
