"""`cloudsync load DB FILE`: JSON lines into a database in batches, bad lines reported by
number without losing the good ones, a summary, the exit status, and progress on stderr
(plain lines off a terminal, a bar on one)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import time

import pytest

import cloudsync

from .conftest import RUN_TIMEOUT, cli_env, run_cli

pytestmark = pytest.mark.integration

CONTROL = ("\r", "\x1b")
"""What a progress bar draws with; plain output has neither."""


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_load_writes_the_good_lines_and_reports_the_bad_ones(server_url, db, tmp_path):
    """Bad lines (not JSON, not an object) are reported by number; every good line is written;
    the summary counts both; the exit status is 1."""
    file = write_lines(tmp_path / "docs.jsonl", [
        '{"_id": "a", "n": 1}', "{oops", '{"_id": "b", "n": 2}', "", "[1, 2]", '{"_id": "c", "n": 3}'])
    result = run_cli("load", db.name, file, "--batch-size", "2", "--url", server_url)
    assert result.returncode == 1
    assert sorted(row["id"] for row in db.all_docs()) == ["a", "b", "c"]
    assert "line 2: not JSON" in result.stderr
    assert "line 5: not a JSON object" in result.stderr
    assert f"loaded {db.name}: 3 written, 0 conflicts, 0 errors, 2 bad lines" in result.stderr


def test_load_counts_conflicts_and_exits_1(embedded_url, tmp_path):
    """A document that exists already (no current `_rev`) is a conflict: counted, its line
    named, exit status 1; the others are written."""
    with cloudsync.Client(embedded_url) as client:
        db = client.create_database("cli-load-conflicts", exist_ok=True)
        db.bulk([{"_id": "taken"}]).run()
    file = write_lines(tmp_path / "docs.jsonl", ['{"_id": "taken"}', '{"_id": "free"}'])
    result = run_cli("load", db.name, file, "--url", embedded_url)
    assert result.returncode == 1
    assert "line 1: conflict" in result.stderr
    assert "1 written, 1 conflicts, 0 errors, 0 bad lines" in result.stderr


def test_load_reads_stdin_and_exits_0(embedded_url):
    """`load DB -` reads standard input; all written: exit status 0, nothing on stdout."""
    lines = "".join(json.dumps({"_id": f"d{i}", "i": i}) + "\n" for i in range(7))
    result = run_cli("load", "cli-load-stdin", "-", "--create", "--batch-size", "3", "--url", embedded_url,
                     input=lines)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "7 written, 0 conflicts, 0 errors, 0 bad lines" in result.stderr
    with cloudsync.Client(embedded_url) as client:
        assert client.database("cli-load-stdin").info()["doc_count"] == 7


def test_load_progress_off_a_terminal_is_plain_lines(embedded_url, tmp_path):
    """With stderr not a terminal, progress is plain lines: no carriage return, no escape code."""
    file = write_lines(tmp_path / "docs.jsonl", [json.dumps({"i": i}) for i in range(50)])
    result = run_cli("load", "cli-load-plain", file, "--create", "--batch-size", "10", "--url", embedded_url)
    assert result.returncode == 0, result.stderr
    assert "load cli-load-plain: 50 lines in " in result.stderr
    assert not any(c in result.stderr for c in CONTROL)


def test_load_progress_on_a_terminal_is_a_bar(embedded_url, tmp_path):
    """With stderr a terminal (and tqdm, the `cli` extra, installed), progress is a bar that
    redraws itself, with the count, the total and a rate."""
    pytest.importorskip("tqdm")
    file = write_lines(tmp_path / "docs.jsonl", [json.dumps({"i": i}) for i in range(40)])
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "cloudsync", "load", "cli-load-bar", file, "--create",
                             "--batch-size", "10", "--url", embedded_url],
                            stdout=subprocess.DEVNULL, stderr=terminal, env=cli_env())
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the process closed its end
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(RUN_TIMEOUT) == 0
    finally:
        proc.kill()
        proc.wait(10)
        os.close(controller)
    text = output.decode()
    assert "\r" in text
    assert "40/40" in text and "lines/s" in text


def test_an_interrupted_load_says_how_to_resume(embedded_url, cli_process):
    """SIGINT while `load` reads stdin: it stops, names the lines that are done and the
    `--skip` that resumes after them, and exits 130."""
    loader = cli_process("load", "cli-load-interrupted", "-", "--create", "--batch-size", "1",
                         "--url", embedded_url, stdin=subprocess.PIPE)
    for i in range(3):
        loader.proc.stdin.write(json.dumps({"_id": f"d{i}"}) + "\n")
    loader.proc.stdin.flush()
    with cloudsync.Client(embedded_url) as client:
        db = client.database("cli-load-interrupted")
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (db.exists() and db.info()["doc_count"] == 3):
            assert time.monotonic() < deadline, "the three documents were not written"
            time.sleep(0.05)  # polling the database, not waiting for a guessed time
    assert loader.interrupt() == 130
    stderr = "".join(loader.stderr)
    assert "lines 1-3 are done; to resume: cloudsync load cli-load-interrupted - --skip 3" in stderr
    assert "Traceback" not in stderr


def test_load_skip_resumes_after_the_lines_done(embedded_url, tmp_path):
    """`--skip N` leaves the first N lines out."""
    file = write_lines(tmp_path / "docs.jsonl", ['{"_id": "a"}', '{"_id": "b"}', '{"_id": "c"}'])
    result = run_cli("load", "cli-load-skip", file, "--create", "--skip", "2", "--url", embedded_url)
    assert result.returncode == 0, result.stderr
    with cloudsync.Client(embedded_url) as client:
        assert [row["id"] for row in client.database("cli-load-skip").all_docs()] == ["c"]


def test_an_interrupted_load_finishes_the_batch_in_flight(embedded_url, tmp_path, cli_process):
    """SIGINT during a file load: the lines it names as done are exactly the documents on the
    server (the batch in flight was answered and counted, none half-known)."""
    file = write_lines(tmp_path / "docs.jsonl", [json.dumps({"_id": f"d{i:05d}"}) for i in range(20000)])
    with cloudsync.Client(embedded_url) as client:
        db = client.create_database("cli-load-held")
        loader = cli_process("load", db.name, file, "--batch-size", "100", "--url", embedded_url)
        deadline = time.monotonic() + RUN_TIMEOUT
        while not db.info()["doc_count"]:
            assert time.monotonic() < deadline, "no document was written"
            time.sleep(0.05)  # polling the database, not waiting for a guessed time
        assert loader.interrupt() == 130
        hint = [line for line in loader.stderr if "are done; to resume" in line]
        assert hint, loader.stderr
        done = int(hint[0].split()[1].partition("-")[2])
        assert db.info()["doc_count"] == done
        assert hint[0].rstrip().endswith(f"--skip {done}")


def test_a_server_lost_mid_load_says_where_it_stopped(restartable, cli_process):
    """The server dies part way: the lines done, the `--skip` that resumes, and the error as
    the last line; exit status 1."""
    loader = cli_process("load", "cli-load-lost", "-", "--create", "--batch-size", "1",
                         "--url", restartable.url, stdin=subprocess.PIPE)
    loader.proc.stdin.write('{"_id": "a"}\n{"_id": "b"}\n')
    loader.proc.stdin.flush()
    with cloudsync.Client(restartable.url) as client:
        db = client.database("cli-load-lost")
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (db.exists() and db.info()["doc_count"] == 2):
            assert time.monotonic() < deadline, "the two documents were not written"
            time.sleep(0.05)  # polling the database, not waiting for a guessed time
    restartable.kill()
    loader.proc.stdin.write('{"_id": "c"}\n')
    loader.proc.stdin.close()
    assert loader.finish() == 1
    assert "lines 1-2 are done; to resume: cloudsync load cli-load-lost - --skip 2\n" in loader.stderr
    assert loader.stderr[-1].startswith(f"cloudsync load: error: cannot reach {restartable.url}: ")
