"""Start and stop pouchdb-server 4.2.0 (installed by scripts/test into tests/node) for tests."""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
BIN = NODE_DIR / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"
# Preloaded so that pouchdb-server exits when the process that started it dies (kill -9).
EXIT_WITH_PARENT = NODE_DIR / "exit_with_parent.js"
_STARTED = re.compile(r"pouchdb-server has started on (http://\S+?)/?\s*$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PouchDBServer:
    """One in-memory pouchdb-server on a free 127.0.0.1 port, stopped by its PID."""

    def __init__(self, *, start_timeout: float = 30.0) -> None:
        if not BIN.exists():
            raise RuntimeError(f"pouchdb-server is not installed at {BIN}: run scripts/test")
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not on PATH: pouchdb-server needs Node.js")
        self._workdir = tempfile.mkdtemp(prefix="pouchdb-")  # it writes config.json/log.txt to cwd
        self.port = free_port()
        # Without --unhandled-rejections=warn a bad filter request kills the server.
        self.process = subprocess.Popen(
            [node, "--unhandled-rejections=warn", "-r", str(EXIT_WITH_PARENT), str(BIN), "--host", "127.0.0.1",
             "--port", str(self.port), "--in-memory"],
            cwd=self._workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0", "CLOUDSYNC_PARENT_PID": str(os.getpid())},
        )
        self.pid = self.process.pid
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self._started = threading.Event()
        threading.Thread(target=self._drain, name="pouchdb-output", daemon=True).start()
        if not self._started.wait(start_timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("pouchdb-server did not start:\n" + "\n".join(self.output))
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PouchDBServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _drain(self) -> None:
        # Keep reading so the pipe never fills and blocks the server.
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = re.sub(r"\x1b\[[0-9;]*m", "", raw.decode("utf-8", "replace")).rstrip()
            self.output.append(line)
            if _STARTED.search(line):
                self._started.set()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout)
        shutil.rmtree(self._workdir, ignore_errors=True)
