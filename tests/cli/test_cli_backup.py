"""`cloudsync backup DB FILE` and `cloudsync restore FILE DB`: round trips compared document by
document, stdout/stdin, Ctrl-C saying how to resume (and the resume then completing), and a
bad backup file as one line naming it."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

import cloudsync
from tests.integration.test_backup import fill, snapshot

from .conftest import RUN_TIMEOUT, cli_env, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def target(client: cloudsync.Client, db: cloudsync.Database) -> Iterator[cloudsync.Database]:
    """The name of a database to restore into (not created), deleted afterwards."""
    restored = client.database(db.name + "-restored")
    yield restored
    client.delete_database(restored.name, missing_ok=True)


@pytest.fixture
def big_db(embedded_url: str) -> Iterator[cloudsync.Database]:
    """An embedded database of 20,000 small documents: long enough to back up or restore in
    small batches that a SIGINT lands in the middle."""
    with cloudsync.Client(embedded_url) as client:
        db = client.create_database(f"cli-big-{uuid.uuid4().hex[:12]}")
        assert not db.bulk(({"_id": f"d{i:05d}", "i": i} for i in range(20000)), batch_size=2000).run()
        yield db
        for name in (db.name, db.name + "-restored"):
            client.delete_database(name, missing_ok=True)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)  # polling a file or the database, not waiting for a guessed time


def test_backup_then_restore_gives_the_same_documents(server_url, db, target, tmp_path):
    """A full backup restored with `--create`: the same leaves, deletions, bodies and
    histories, document by document; both commands sum up on stderr and exit 0."""
    fill(db, 60)
    file = str(tmp_path / "db.txt")
    backed = run_cli("backup", db.name, file, "--batch-size", "25", "--url", server_url)
    assert backed.returncode == 0, backed.stderr
    assert f"backed up {db.name} to {file}: " in backed.stderr and "(full)" in backed.stderr
    restored = run_cli("restore", file, target.name, "--create", "--url", server_url)
    assert restored.returncode == 0, restored.stderr
    assert f"into {target.name}" in restored.stderr
    assert snapshot(target) == snapshot(db)


def test_a_backup_to_stdout_restores_from_stdin(server_url, db, target):
    """`backup DB -` writes the file on stdout (messages on stderr), and `restore - DB` reads
    it from stdin: the same documents."""
    fill(db, 30)
    backed = run_cli("backup", db.name, "-", "--url", server_url)
    assert backed.returncode == 0, backed.stderr
    assert backed.stdout.startswith('{"name":"@cloudant/couchbackup"')
    restored = run_cli("restore", "-", target.name, "--create", "--url", server_url, input=backed.stdout)
    assert restored.returncode == 0, restored.stderr
    assert snapshot(target) == snapshot(db)


def test_a_shallow_backup_keeps_the_winners(server_url, db, target, tmp_path):
    """`--mode shallow`: every live document's winning body, no deleted one."""
    fill(db, 20)
    file = str(tmp_path / "db.txt")
    assert run_cli("backup", db.name, file, "--mode", "shallow", "--url", server_url).returncode == 0
    assert run_cli("restore", file, target.name, "--create", "--url", server_url).returncode == 0

    def winners(d):
        return {r["id"]: r["doc"] for r in d.all_docs(include_docs=True)}

    assert winners(target) == winners(db) and "doc-0002" not in winners(target)


def test_an_interrupted_backup_says_how_to_resume_and_resumes(big_db, embedded_url, tmp_path, cli_process):
    """SIGINT mid-backup: exit 130, the `--resume` command on stderr; that command finishes
    the file, which restores to the whole database."""
    file = tmp_path / "db.txt"
    backup = cli_process("backup", big_db.name, str(file), "--batch-size", "20", "--parallelism", "1",
                         "--url", embedded_url)
    wait_until(lambda: file.exists() and file.read_bytes().count(b"\n") >= 3, "no batch was written")
    assert backup.interrupt() == 130
    stderr = "".join(backup.stderr)
    hint = f"to resume: cloudsync backup {big_db.name} {file} --resume --url {embedded_url}"
    assert hint in stderr and "Traceback" not in stderr
    resumed = run_cli(*hint.partition(": ")[2].split()[1:])
    assert resumed.returncode == 0, resumed.stderr
    restored = run_cli("restore", str(file), big_db.name + "-restored", "--create", "--url", embedded_url)
    assert restored.returncode == 0, restored.stderr
    with cloudsync.Client(embedded_url) as client:
        assert client.database(big_db.name + "-restored").info()["doc_count"] == 20000


def test_an_interrupted_restore_says_how_to_resume(big_db, embedded_url, tmp_path, cli_process):
    """SIGINT mid-restore: exit 130, the documents restored so far and the command to run
    again; run again, it completes."""
    file = str(tmp_path / "db.txt")
    assert run_cli("backup", big_db.name, file, "--url", embedded_url).returncode == 0
    name = big_db.name + "-restored"
    restore = cli_process("restore", file, name, "--create", "--batch-size", "10", "--url", embedded_url)
    with cloudsync.Client(embedded_url) as client:
        target = client.database(name)
        wait_until(lambda: target.exists() and target.info()["doc_count"] > 0, "nothing was restored")
        assert restore.interrupt() == 130
        stderr = "".join(restore.stderr)
        assert f"to resume, run it again: cloudsync restore {file} {name} --url {embedded_url}" in stderr
        assert "documents restored; interrupted" in stderr and "Traceback" not in stderr
        assert target.info()["doc_count"] < 20000
        again = run_cli("restore", file, name, "--url", embedded_url)
        assert again.returncode == 0, again.stderr
        assert target.info()["doc_count"] == 20000


def test_a_bad_line_in_a_backup_file_is_one_error_line(server_url, db, tmp_path):
    """A line that is not JSON: exit 1, one line naming the file and the line, and what was
    restored before it is kept."""
    path = tmp_path / "bad.txt"
    path.write_text('{"name":"x","version":"1","mode":"full"}\n[{"_id":"a","_rev":"1-aa"}]\nnot json\n'
                    '[{"_id":"b","_rev":"1-bb"}]\n')
    result = run_cli("restore", str(path), db.name, "--url", server_url)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (f"cloudsync restore: error: {path}: line 3 of the backup file: "
                                              "not valid JSON (1 documents restored before it)")
    assert "Traceback" not in result.stderr
    assert [row["id"] for row in db.all_docs()] == ["a"]


def test_backup_options_that_cannot_work_are_usage_errors(embedded_url):
    """`--resume` with a shallow backup, or to stdout without a log: exit 2, one line."""
    for args in (["db", "f.txt", "--mode", "shallow", "--resume"], ["db", "-", "--resume"]):
        result = run_cli("backup", *args, "--url", embedded_url)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "--resume" in result.stderr


def test_restoring_a_missing_file_is_a_usage_error(embedded_url, tmp_path):
    """A FILE that cannot be read: exit 2, one line naming it."""
    result = run_cli("restore", str(tmp_path / "nothere.txt"), "db", "--url", embedded_url)
    assert result.returncode == 2
    assert result.stderr == f"cloudsync restore: error: cannot read {tmp_path / 'nothere.txt'}: No such file or directory\n"


def test_backup_progress_goes_to_stderr_and_the_file_to_stdout(server_url, db, tmp_path):
    """Progress goes to stderr: off a terminal, plain lines only (the stdout of `backup -` is
    the file alone)."""
    fill(db, 10)
    proc = subprocess.run([sys.executable, "-m", "cloudsync", "backup", db.name, "-", "--url", server_url],
                          capture_output=True, timeout=RUN_TIMEOUT, env=cli_env())
    assert proc.returncode == 0
    assert b"\r" not in proc.stderr and f"backup {db.name}: ".encode() in proc.stderr
    assert all(line.startswith((b"{", b"[")) for line in proc.stdout.splitlines())
