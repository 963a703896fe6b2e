"""PouchDB for Node (a client nobody here wrote) replicating with the embedded server and
with pouchdb-server: push, pull and live two-way sync end with both sides identical,
document by document, and the embedded server ends as pouchdb-server does.

The scenarios run in tests/node/pouchdb_replication.js; each prints both sides' state.
"""

from __future__ import annotations

import base64
import hashlib
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


def md5_digest(content: bytes) -> str:
    """An attachment digest as CouchDB and PouchDB write it."""
    return "md5-" + base64.b64encode(hashlib.md5(content).digest()).decode()


def without_revpos(state: dict[str, Any]) -> dict[str, Any]:
    """A side's state with every attachment's `revpos` left out. PouchDB's adapters (its
    memory one here, leveldb in pouchdb-server) set `revpos` to the generation of the
    revision that stored inline content, so a replicated attachment's `revpos` changes
    wherever PouchDB stores it; CouchDB and the embedded server keep the one sent."""

    def leaf(found: dict[str, Any]) -> dict[str, Any]:
        attachments = {name: {key: value for key, value in stub.items() if key != "revpos"}
                       for name, stub in found["attachments"].items()}
        return {**found, "attachments": attachments}

    return {doc_id: {**doc, "leaves": [leaf(found) for found in doc["leaves"]]} for doc_id, doc in state.items()}


def shape(state: dict[str, Any]) -> dict[str, Any]:
    """A side's state without rev hashes (random in PouchDB): what two runs share."""

    def gen(rev: str) -> int:
        return int(rev.partition("-")[0])

    return {doc_id: {"winner": gen(doc["winner"]), "deleted": doc["deleted"],
                     "leaves": sorted((gen(leaf["rev"]), leaf["deleted"], json.dumps(leaf["body"], sort_keys=True),
                                       json.dumps(leaf["attachments"], sort_keys=True))
                                      for leaf in doc["leaves"])}
            for doc_id, doc in state.items()}


@pytest.mark.parametrize("server", ["embedded", "pouchdb"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_both_sides_end_identical(outcome, server, scenario):
    """After the scenario, the local database and the server hold the same documents:
    same winners, same leaf revisions (open_revs=all), same bodies and attachments (name,
    content type, digest, length, and the length and md5 of the content fetched; not
    `revpos`, see `without_revpos`), deleted ones included."""
    result = outcome(server, scenario)
    assert without_revpos(result["local"]) == without_revpos(result["remote"])
    assert len(result["remote"]) > 300


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_embedded_ends_as_pouchdb_server_does(outcome, scenario):
    """The embedded server ends each scenario in the same state as pouchdb-server (rev
    hashes and `revpos` aside): same documents, winners' generations, deletions, leaves,
    bodies and attachments."""
    assert shape(without_revpos(outcome("embedded", scenario)["remote"])) == \
        shape(without_revpos(outcome("pouchdb", scenario)["remote"]))


def test_push_carries_the_conflict(outcome):
    """A pushed conflict arrives with both branches, the same winner chosen on both sides."""
    doc = outcome("embedded", "push")["remote"]["conflicted"]
    assert [leaf["body"]["side"] for leaf in doc["leaves"]] == ["b", "c"]
    assert doc["winner"].startswith("2-c")


def test_push_keeps_revpos(outcome):
    """A pushed attachment keeps its `revpos` on the embedded server, as on CouchDB: the
    server's leaves equal PouchDB's in full, `revpos` included."""
    result = outcome("embedded", "push")
    assert result["remote"] == result["local"]


def test_push_carries_the_binary_attachment(outcome):
    """The ~1 MB binary attachment arrives whole: the content fetched from the server has
    the stub's length, and its md5 is the stub's digest."""
    [leaf] = outcome("embedded", "push")["remote"]["push-att-binary"]["leaves"]
    stub = leaf["attachments"]["random.bin"]
    assert stub["length"] == stub["fetched"]["length"] == (1 << 20) + 7
    assert stub["fetched"]["md5"] == stub["digest"]


def test_attachments_follow_their_branch(outcome):
    """Each branch of a pushed conflict keeps its own attachment on the server."""
    doc = outcome("embedded", "push")["remote"]["conflicted"]
    assert [leaf["attachments"]["side.txt"]["fetched"]["md5"] for leaf in doc["leaves"]] == [
        md5_digest(b"the losing branch"), md5_digest(b"the winning branch")]
