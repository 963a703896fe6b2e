"""Run the cloudsync server in a subprocess from tests.

```python
from cloudsync.server.testing import serve

with serve() as server:                  # fresh temporary data dir, free port
    requests.put(f"{server.url}/orders")
    server.restart()                     # same port, same data: clients reconnect to server.url
    server.kill()                        # kill -9, e.g. to test crash recovery
```

As a pytest fixture:

```python
@pytest.fixture(scope="session")
def couch():
    with serve(memory=True) as server:
        yield server
```
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ServerProcess", "serve"]

_LISTENING = re.compile(r"cloudsync server listening on (http://\S+:(\d+))")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class ServerProcess:
    """A cloudsync server subprocess: `url`, `pid`, `data_dir`, `stop()`, `kill()`, `restart()`.

    [serve][cloudsync.server.testing.serve] makes one and cleans up after it; built
    directly, `start()` it (or enter it as a context manager) and `close()` it.

    Args:
        data_dir: Where the databases live; ignored with `memory`.
        memory: Keep nothing on disk.
        admin: `(user, password)` of the admin, or `None` when the server needs no auth.
            Kept as `auth`.
        port: The port; `0` picks a free one, kept across `restart()`.
        host: The address to listen on.
        startup_timeout: Seconds `start()` waits for the server to listen.
        stop_timeout: Seconds `stop()` waits after SIGTERM before SIGKILL.
        extra_args: More command-line arguments for `cloudsync serve`.
    """

    def __init__(self, data_dir: str | None, *, memory: bool = False, admin: tuple[str, str] | None = None,
                 port: int = 0, host: str = "127.0.0.1", startup_timeout: float = 30.0,
                 stop_timeout: float = 10.0, extra_args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.memory = memory
        self.auth = admin
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = tuple(extra_args)
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._stderr_path = Path(tempfile.mkstemp(prefix="cloudsync-server-", suffix=".log")[1])

    @property
    def pid(self) -> int | None:
        """The server process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def _command(self) -> list[str]:
        # --parent-pid: if this process dies without stopping the server (kill -9), the
        # server stops by itself instead of staying on as an orphan.
        cmd = [sys.executable, "-m", "cloudsync.server", "--host", self.host, "--port", str(self.port),
               "--parent-pid", str(os.getpid())]
        cmd += ["--memory"] if self.memory else ["--data-dir", str(self.data_dir)]
        if self.auth is not None:
            cmd += ["--admin", f"{self.auth[0]}:{self.auth[1]}"]
        return cmd + list(self.extra_args)

    def start(self) -> None:
        """Start the process and wait (up to `startup_timeout`) until it listens.

        Raises:
            RuntimeError: It is running already, or it exited or did not listen in time
                (the message ends with its log).
        """
        if self._proc is not None:
            raise RuntimeError("server already running")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        env.pop("CLOUDSYNC_ADMIN", None)
        env.pop("CLOUDSYNC_JWT_SECRET", None)
        with open(self._stderr_path, "ab") as stderr:
            proc = subprocess.Popen(self._command(), stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                                    start_new_session=True)
        self._proc = proc
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:  # also keeps the pipe drained for the server's lifetime
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name=f"cloudsync-server-{proc.pid}", daemon=True).start()
        try:
            while True:
                line = lines.get(timeout=self.startup_timeout)
                if line is None:
                    raise RuntimeError(f"cloudsync server exited during startup:\n{self.log_tail()}")
                m = _LISTENING.search(line)
                if m:
                    self.url = m.group(1)
                    self.port = int(m.group(2))
                    return
        except queue.Empty:
            self.kill()
            raise RuntimeError(
                f"cloudsync server did not listen within {self.startup_timeout}s:\n{self.log_tail()}"
            ) from None
        except BaseException:
            self.kill()
            raise

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote to stderr.

        Args:
            lines: How many lines at most.

        Returns:
            The lines, joined; empty when the log cannot be read.
        """
        try:
            return "\n".join(self._stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _end(self, sig: int) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited after `stop_timeout` seconds."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """`kill -9`: no shutdown at all (for crash tests)."""
        self._end(signal.SIGKILL)

    def restart(self, *, kill: bool = False) -> None:
        """Stop (or kill) and start again on the same port with the same data directory.

        Args:
            kill: `kill -9` instead of a clean stop.
        """
        self.kill() if kill else self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its log file."""
        self.stop()
        self._stderr_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def serve(data_dir: str | os.PathLike[str] | None = None, *, memory: bool = False,
          admin: tuple[str, str] | str | None = None, port: int = 0, host: str = "127.0.0.1",
          startup_timeout: float = 30.0, extra_args: tuple[str, ...] = ()) -> Iterator[ServerProcess]:
    """Run a cloudsync server subprocess for the `with` block and stop it afterwards.

    Args:
        data_dir: Where the databases live (kept); `None` uses a temporary directory
            removed afterwards.
        memory: Keep nothing on disk (and `restart()` starts empty).
        admin: `("user", "password")` or `"user:password"` to require auth.
        port: The port; `0` picks a free one, kept across `restart()`.
        host: The address to listen on.
        startup_timeout: Seconds to wait for the server to listen.
        extra_args: More command-line arguments for `cloudsync serve`.

    Yields:
        The running [ServerProcess][cloudsync.server.testing.ServerProcess].

    Raises:
        RuntimeError: The server exited during startup or did not listen in time.
    """
    if isinstance(admin, str):
        user, _, password = admin.partition(":")
        admin = (user, password)
    temp = None
    if data_dir is None and not memory:
        temp = tempfile.mkdtemp(prefix="cloudsync-test-")
        data_dir = temp
    server = ServerProcess(None if data_dir is None else str(data_dir), memory=memory, admin=admin, port=port,
                           host=host, startup_timeout=startup_timeout, extra_args=extra_args)
    try:
        with server:
            yield server
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
