"""Run the `cloudsync` command as a real subprocess (`python -m cloudsync ...`), with a clean
environment (no COUCHDB_* of the developer's), timeouts, and every process stopped by its PID."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
RUN_TIMEOUT = 60.0
"""Seconds one command may take (the machine may be busy: imports alone can take seconds)."""

CONNECTION_VARIABLES = ("COUCHDB_URL", "COUCHDB_USER", "COUCHDB_PASSWORD", "CLOUDANT_APIKEY", "IAM_API_KEY",
                         "IAM_TOKEN_URL")


def cli_env(**variables: str) -> dict[str, str]:
    """The environment of a `cloudsync` subprocess: this one without connection variables,
    this checkout first on the path, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if k not in CONNECTION_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    return {**env, **variables}


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run `python -m cloudsync *args` to its end."""
    return subprocess.run([sys.executable, "-m", "cloudsync", *args], capture_output=True, text=True,
                          input=input, timeout=timeout, env=env if env is not None else cli_env())


class CLIProcess:
    """A running `python -m cloudsync ...` whose stdout and stderr lines are read as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, stdin: int | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cloudsync", *args], stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env if env is not None else cli_env())
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._open_streams = 2
        self._readers = [threading.Thread(target=self._read, args=(name, stream), daemon=True)
                         for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr))]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._lines.put((name, line))
        self._lines.put(None)

    def _pump(self, timeout: float) -> bool:
        """Take one line read (waiting up to `timeout`); False when none came."""
        try:
            item = self._lines.get(timeout=timeout)
        except queue.Empty:
            return False
        if item is None:
            self._open_streams -= 1
        else:
            getattr(self, item[0]).append(item[1])
        return True

    def wait_for(self, condition: Callable[[CLIProcess], bool], timeout: float = RUN_TIMEOUT) -> None:
        """Wait until `condition(self)` holds, reading lines as they come."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            left = deadline - time.monotonic()
            if left <= 0 or not self._open_streams:  # out of time, or the process said all it will
                raise AssertionError(f"condition not met; stdout={self.stdout!r} stderr={self.stderr!r}")
            self._pump(min(left, 0.5))

    def finish(self, timeout: float = RUN_TIMEOUT) -> int:
        """Wait for the process to end and its output to be read; its exit status."""
        status = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        while self._open_streams and self._pump(timeout):
            pass
        return status

    def interrupt(self, timeout: float = RUN_TIMEOUT) -> int:
        """SIGINT (as Ctrl-C sends), then `finish()`."""
        self.proc.send_signal(signal.SIGINT)
        return self.finish(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def cli_process() -> Iterator[Callable[..., CLIProcess]]:
    """Start `python -m cloudsync ...` processes; each is killed by PID at the end of the test."""
    started: list[CLIProcess] = []

    def start(*args: str, **kwargs: object) -> CLIProcess:
        process = CLIProcess(*args, **kwargs)  # type: ignore[arg-type]
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
