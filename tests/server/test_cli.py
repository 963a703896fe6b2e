"""`cloudsync serve` on the command line: its listening line, `CLOUDSYNC_ADMIN`, the data
directory, SIGTERM, `--help` and refusing unsafe or malformed options."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = str(Path(__file__).resolve().parents[2])


def run_cli(*args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    """Run `python -m cloudsync.cli *args` to its end."""
    return subprocess.run([sys.executable, "-m", "cloudsync.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT})


@dataclass
class Serving:
    proc: subprocess.Popen
    #: The first line it printed.
    line: str
    data_dir: Path


@contextmanager
def cli_serve(data_dir: Path) -> Iterator[Serving]:
    """`cloudsync serve --port 0 --data-dir <data_dir>` with `CLOUDSYNC_ADMIN=u:p`, killed by PID afterwards."""
    env = {**os.environ, "PYTHONPATH": ROOT, "CLOUDSYNC_ADMIN": "u:p"}
    proc = subprocess.Popen([sys.executable, "-m", "cloudsync.cli", "serve", "--port", "0", "--data-dir",
                             str(data_dir)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        yield Serving(proc, proc.stdout.readline(), data_dir)
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    with cli_serve(tmp_path_factory.mktemp("cli") / "data") as s:
        yield s


def url_of(s: Serving) -> str:
    return s.line.split()[-1]


def test_serve_prints_its_listening_url(serving):
    """`serve` prints `cloudsync server listening on http://127.0.0.1:<port>` first."""
    assert serving.line.startswith("cloudsync server listening on http://127.0.0.1:")


def test_serve_requires_the_cloudsync_admin_user(serving):
    """With `CLOUDSYNC_ADMIN` set, anonymous requests are 401."""
    assert requests.get(url_of(serving) + "/_all_dbs").status_code == 401


def test_serve_accepts_the_cloudsync_admin_credentials(serving):
    """The `CLOUDSYNC_ADMIN` user and password are accepted."""
    assert requests.get(url_of(serving) + "/_all_dbs", auth=("u", "p")).json() == []


def test_serve_creates_its_data_dir(serving):
    """`serve --data-dir` creates the directory."""
    assert serving.data_dir.is_dir()


def test_serve_exits_0_on_sigterm(tmp_path):
    """SIGTERM stops `serve` with exit status 0."""
    with cli_serve(tmp_path / "data") as s:
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(10) == 0


def test_serve_refuses_a_public_host_without_auth():
    """`serve --host 0.0.0.0` without an admin exits non-zero, pointing at `--admin`."""
    r = run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--memory")
    assert r.returncode != 0
    assert "--admin" in r.stderr


def test_serve_help_lists_its_options():
    """`serve --help` lists its options (`--data-dir` among them)."""
    assert "--data-dir" in run_cli("serve", "--help").stdout


@pytest.mark.parametrize("pid", ["0", "-5", str(2**40)])
def test_serve_refuses_a_parent_pid_that_names_no_other_process(pid):
    """`--parent-pid` that cannot name another process exits 2 with a usage error, instead
    of a watcher that never fires."""
    r = run_cli("serve", "--memory", "--port", "0", f"--parent-pid={pid}")
    assert r.returncode == 2
    assert "--parent-pid" in r.stderr


def test_serve_refuses_a_malformed_admin():
    """`--admin` without a colon exits 2 with a usage hint naming USER:PASSWORD."""
    r = run_cli("serve", "--admin", "nocolon", "--memory")
    assert r.returncode == 2
    assert "USER:PASSWORD" in r.stderr
