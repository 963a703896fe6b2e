"""cloudsync.backup()/restore(): round trips on both servers, interchange with couchbackup's
own tools (run against the embedded server), resuming, and broken files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

import cloudsync

BIN = Path(__file__).resolve().parents[1] / "node" / "node_modules" / ".bin"
TOOL_TIMEOUT = 120


def file_lines(path: Path) -> list[bytes]:
    """The lines of a backup file, split on newlines only (a document may hold U+2028,
    which str.splitlines() would split on too)."""
    return path.read_bytes().rstrip(b"\n").split(b"\n")


def node_tool(name: str) -> str:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: couchbackup's tools cannot run")
    tool = BIN / name
    if not tool.exists():
        pytest.skip(f"{tool} is missing: run npm ci in tests/node")
    return str(tool)


def fill(db: cloudsync.Database, n: int = 120) -> None:
    """Documents with a history, a deletion and a conflict."""
    db.bulk([{"_id": f"doc-{i:04d}", "i": i, "text": "é ünïcode \u2028"} for i in range(n)]).run()
    updated = db.get("doc-0001")
    db.update({**updated, "i": "updated"})
    db.delete(db.get("doc-0002"))
    db.bulk([{"_id": "doc-0003", "_rev": "1-ffffffff", "side": "conflict"}], new_edits=False).run()


def snapshot(db: cloudsync.Database) -> dict[str, Any]:
    """Every document's leaf revisions, deletion, winning body and winner's history."""
    rows = db.request("GET", "_changes", params={"style": "all_docs"})["results"]
    state: dict[str, Any] = {}
    for row in rows:
        entry: dict[str, Any] = {"leaves": sorted(c["rev"] for c in row["changes"]),
                                 "deleted": bool(row.get("deleted"))}
        if not entry["deleted"]:
            doc = db.get(row["id"], conflicts=True, revs_info=True)
            entry["history"] = [r["rev"] for r in doc.pop("_revs_info")]
            entry["doc"] = doc
        state[row["id"]] = entry
    return state


@pytest.fixture
def target(client: cloudsync.Client, db: cloudsync.Database):
    restored = client.create_database(db.name + "-restored")
    yield restored
    client.delete_database(restored.name)


def test_a_full_round_trip_keeps_histories_deletions_and_conflicts(db, target, tmp_path):
    """backup() then restore(): the same leaves, deletions, bodies and winner histories."""
    fill(db)
    calls: list[tuple[int, int | None]] = []
    written = cloudsync.backup(db, tmp_path / "db.txt", progress=lambda d, t: calls.append((d, t)),
                               batch_size=50)
    assert cloudsync.restore(tmp_path / "db.txt", target) == written
    assert snapshot(target) == snapshot(db)
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_a_shallow_round_trip_keeps_each_winner(db, target, tmp_path):
    """mode="shallow": every live document's winning body comes back; deleted ones do not."""
    fill(db, 30)
    cloudsync.backup(db, tmp_path / "db.txt", mode="shallow", batch_size=7)
    cloudsync.restore(tmp_path / "db.txt", target)
    def winners(d):
        return {r["id"]: r["doc"] for r in d.all_docs(include_docs=True)}
    assert winners(target) == winners(db)
    assert "doc-0002" not in winners(target)


def test_the_file_is_couchbackups_format(db, tmp_path):
    """A header line naming couchbackup's format, then one JSON array of documents per batch."""
    fill(db, 10)
    cloudsync.backup(db, tmp_path / "db.txt", batch_size=4)
    lines = file_lines(tmp_path / "db.txt")
    header = json.loads(lines[0])
    assert header == {"name": "@cloudant/couchbackup", "version": "2.11.12", "mode": "full", "attachments": False}
    batches = [json.loads(line) for line in lines[1:]]
    assert all(isinstance(b, list) and len(b) > 0 for b in batches)
    assert all("_revisions" in doc for b in batches for doc in b)


def test_the_log_names_a_plain_document_by_id_and_others_by_each_leaf(db, tmp_path):
    """The log lists a live document with one leaf by its id alone (as couchbackup does), and
    a conflicted or a deleted one by each leaf's `{id, rev}` (an id alone may not answer them)."""
    fill(db, 10)
    cloudsync.backup(db, tmp_path / "db.txt")
    listed = [want for line in (tmp_path / "db.txt.log").read_text().splitlines() if line.startswith(":t ")
              for want in json.loads(line.split(" ", 2)[2])]
    by_id: dict[str, list[dict[str, str]]] = {}
    for want in listed:
        by_id.setdefault(want["id"], []).append(want)
    assert by_id["doc-0000"] == [{"id": "doc-0000"}]
    assert by_id["doc-0001"] == [{"id": "doc-0001"}]
    assert [w["rev"] for w in by_id["doc-0002"]] == [c["rev"] for c in changes_of(db, "doc-0002")]
    assert sorted(w["rev"] for w in by_id["doc-0003"]) == sorted(c["rev"] for c in changes_of(db, "doc-0003"))
    assert len(by_id["doc-0003"]) == 2


def changes_of(db: cloudsync.Database, doc_id: str) -> list[dict[str, str]]:
    rows = db.request("GET", "_changes", params={"style": "all_docs"})["results"]
    return next(row["changes"] for row in rows if row["id"] == doc_id)


def test_an_interrupted_backup_resumes_from_its_log(db, target, tmp_path):
    """A backup stopped after its first batch is resumed: only the other batches are fetched,
    and the file restores to the whole database."""
    fill(db, 100)

    class Stop(Exception):
        pass

    def stop_after_first(done: int, total: int | None) -> None:
        raise Stop

    with pytest.raises(Stop):
        cloudsync.backup(db, tmp_path / "db.txt", progress=stop_after_first, batch_size=20)
    log = (tmp_path / "db.txt.log").read_text()
    assert log.count(":d batch") == 1 and ":changes_complete" in log
    second = cloudsync.backup(db, tmp_path / "db.txt", resume=True, batch_size=20)
    first_batch = len(json.loads(file_lines(tmp_path / "db.txt")[1]))
    assert second == len(snapshot_revs(db)) - first_batch
    assert (tmp_path / "db.txt").read_text().count("@cloudant/couchbackup:resume") == 1
    cloudsync.restore(tmp_path / "db.txt", target)
    assert snapshot(target) == snapshot(db)


def snapshot_revs(db: cloudsync.Database) -> list[str]:
    return [c["rev"] for row in db.request("GET", "_changes", params={"style": "all_docs"})["results"]
            for c in row["changes"]]


def test_resuming_without_a_log_is_a_backup_error(db, tmp_path):
    """resume=True with no log file raises BackupError, writing nothing."""
    with pytest.raises(cloudsync.BackupError):
        cloudsync.backup(db, tmp_path / "db.txt", resume=True)
    assert not (tmp_path / "db.txt").exists()


def test_a_missing_database_is_not_found(client, tmp_path):
    """Backing up a database that does not exist raises NotFound."""
    with pytest.raises(cloudsync.NotFound):
        cloudsync.backup(client.database("no-such-db-to-back-up"), tmp_path / "db.txt")


def test_a_truncated_file_restores_what_came_before_and_says_where(db, target, tmp_path):
    """A file cut in the middle of its last line: BackupFileError names that line; the
    batches before it are restored."""
    fill(db, 30)
    cloudsync.backup(db, tmp_path / "db.txt", batch_size=10)
    data = (tmp_path / "db.txt").read_bytes()
    (tmp_path / "cut.txt").write_bytes(data[: len(data) - 40])
    lines = data.count(b"\n")
    with pytest.raises(cloudsync.BackupFileError, match="truncated") as raised:
        cloudsync.restore(tmp_path / "cut.txt", target, batch_size=1000)
    assert raised.value.line == lines
    before = sum(len(json.loads(line)) for line in file_lines(tmp_path / "db.txt")[1 : lines - 1])
    assert raised.value.restored == before
    assert len(snapshot_revs(target)) == before


def test_a_malformed_line_is_a_typed_error_naming_it(db, target, tmp_path):
    """A line that is not JSON in the middle of a file: BackupFileError with its line number;
    the documents before it are restored, none after it."""
    path = tmp_path / "bad.txt"
    path.write_text('{"name":"x","version":"1","mode":"full"}\n[{"_id":"a","_rev":"1-aa"}]\nnot json\n'
                    '[{"_id":"b","_rev":"1-bb"}]\n')
    with pytest.raises(cloudsync.BackupFileError) as raised:
        cloudsync.restore(path, target)
    assert (raised.value.line, raised.value.restored) == (3, 1)
    assert [r["id"] for r in target.all_docs()] == ["a"]


def test_a_line_that_is_not_a_batch_is_a_typed_error(target, tmp_path):
    """A JSON value that is neither an array of documents nor a header raises BackupFileError."""
    path = tmp_path / "bad.txt"
    path.write_text('[{"_id":"a","_rev":"1-aa"}]\n[1, 2]\n')
    with pytest.raises(cloudsync.BackupFileError) as raised:
        cloudsync.restore(path, target)
    assert raised.value.line == 2


def test_restoring_twice_changes_nothing(db, target, tmp_path):
    """A restore run again (to finish an interrupted one) stores nothing new."""
    fill(db, 20)
    cloudsync.backup(db, tmp_path / "db.txt")
    cloudsync.restore(tmp_path / "db.txt", target)
    before = snapshot(target)
    cloudsync.restore(tmp_path / "db.txt", target)
    assert snapshot(target) == before


# -- with couchbackup's own tools, against the embedded server -------------------------------
@pytest.fixture
def embedded_db(embedded_url: str):
    with cloudsync.Client(embedded_url) as client:
        name = f"backup-{uuid.uuid4().hex}"
        yield client, client.create_database(name)
        for suffix in ("", "-restored"):
            with contextlib.suppress(cloudsync.NotFound):
                client.delete_database(name + suffix)


def run_tool(tool: str, url: str, db: str, *args: str, stdin: Any = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COUCH_URL": url}
    return subprocess.run([node_tool(tool), "--db", db, *args], stdin=stdin, env=env,
                          capture_output=True, text=True, timeout=TOOL_TIMEOUT)


def test_a_cloudsync_backup_restores_with_couchrestore(embedded_db, embedded_url, tmp_path):
    """couchrestore reads a backup cloudsync wrote; the database comes back the same."""
    client, db = embedded_db
    fill(db)
    cloudsync.backup(db, tmp_path / "db.txt", batch_size=30)
    target = client.create_database(db.name + "-restored")
    with open(tmp_path / "db.txt") as stdin:
        run = run_tool("couchrestore", embedded_url, target.name, stdin=stdin)
    assert run.returncode == 0, run.stderr[-2000:]
    assert snapshot(target) == snapshot(db)


def test_a_couchbackup_backup_restores_with_cloudsync(embedded_db, embedded_url, tmp_path):
    """cloudsync.restore() reads a backup couchbackup wrote; the winners come back the same."""
    client, db = embedded_db
    fill(db)
    run = run_tool("couchbackup", embedded_url, db.name, "--output", str(tmp_path / "cb.txt"),
                   "--log", str(tmp_path / "cb.log"))
    assert run.returncode == 0, run.stderr[-2000:]
    target = client.create_database(db.name + "-restored")
    cloudsync.restore(tmp_path / "cb.txt", target)
    def winners(d):
        return {r["id"]: r["doc"] for r in d.all_docs(include_docs=True)}
    assert winners(target) == winners(db)


def test_couchbackup_resumes_a_backup_cloudsync_started(embedded_db, embedded_url, tmp_path):
    """The log is couchbackup's: its --resume finishes a backup cloudsync was interrupted in."""
    client, db = embedded_db
    fill(db, 100)

    class Stop(Exception):
        pass

    def stop(done: int, total: int | None) -> None:
        raise Stop

    with pytest.raises(Stop):
        cloudsync.backup(db, tmp_path / "db.txt", progress=stop, batch_size=20)
    run = run_tool("couchbackup", embedded_url, db.name, "--output", str(tmp_path / "db.txt"),
                   "--log", str(tmp_path / "db.txt.log"), "--resume")
    assert run.returncode == 0, run.stderr[-2000:]
    target = client.create_database(db.name + "-restored")
    cloudsync.restore(tmp_path / "db.txt", target)
    assert snapshot(target) == snapshot(db)


def test_couchbackup_shallow_mode_backs_up_each_winner_once(embedded_db, embedded_url, tmp_path):
    """couchbackup's shallow mode pages POST _all_docs with body parameters; it ends, and its
    file holds each live document's winning revision exactly once."""
    client, db = embedded_db
    fill(db, 130)
    run = run_tool("couchbackup", embedded_url, db.name, "--mode", "shallow", "--buffer-size", "50",
                   "--output", str(tmp_path / "shallow.txt"))
    assert run.returncode == 0, run.stderr[-2000:]
    docs = [doc for line in file_lines(tmp_path / "shallow.txt")[1:] for doc in json.loads(line)]
    assert all(doc is not None for doc in docs)
    assert sorted(doc["_id"] for doc in docs) == sorted(r["id"] for r in db.all_docs())
    winners = {r["id"]: r["doc"]["_rev"] for r in db.all_docs(include_docs=True)}
    assert {doc["_id"]: doc["_rev"] for doc in docs} == winners
