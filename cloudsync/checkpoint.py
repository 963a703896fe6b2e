"""Where a subscription remembers how far the application has got.

A store holds one opaque seq. The subscription loads it once when it starts (it wins
over `since`) and saves a seq only after the application has handled every change
up to it, so a process killed at any moment resumes without a gap (possibly handling
the last few changes again: delivery across a crash is at-least-once).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _json
from ._retry import RetryPolicy
from .errors import Conflict, NotFound

_NOTHING = object()

__all__ = ["CheckpointStore", "FileCheckpoint", "LocalDocCheckpoint", "MemoryCheckpoint"]


class CheckpointStore:
    """Base class: subclass it and implement `load()` and `save()`."""

    def load(self) -> Any:
        """The saved seq.

        Returns:
            The seq last saved, or `None` when there is none.
        """
        raise NotImplementedError

    def save(self, seq: Any) -> None:
        """Remember `seq`: the application has handled every change up to it.

        Args:
            seq: The seq, opaque; store it as given.
        """
        raise NotImplementedError

    def save_final(self, seq: Any, timeout: float) -> None:
        """The last save, when a subscription closes. The default calls `save()`; a store
        whose save can block (on a network, say) overrides it with a bounded one.

        Args:
            seq: The seq, opaque; store it as given.
            timeout: Seconds within which it must return.
        """
        self.save(seq)


class MemoryCheckpoint(CheckpointStore):
    """In memory: survives reconnects and new subscriptions in the same process.

    Args:
        seq: The seq to start with; `None` for none.
    """

    def __init__(self, seq: Any = None) -> None:
        self._seq = seq
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            return self._seq

    def save(self, seq: Any) -> None:
        with self._lock:
            self._seq = seq

    def __repr__(self) -> str:
        return f"MemoryCheckpoint({self._seq!r})"


class FileCheckpoint(CheckpointStore):
    """A JSON file replaced atomically: write a temp file, fsync, `os.replace`.

    A crash leaves either the old or the new file, never a torn one. The file is written
    at most once every `interval` seconds: a save within that time of the last write is
    kept in memory and written by the next save after it, or on close (`save_final()`,
    [`flush()`][cloudsync.FileCheckpoint.flush]). So a process killed without closing
    resumes from a position up to `interval` seconds (or, on a quiet feed, one burst) old
    and hands those changes out again: delivery across a crash is at-least-once anyway,
    and this bounds the cost of a busy feed to one write a second instead of one per
    change.

    Args:
        path: The file. Its directory must exist; temporary files are made beside it.
        fsync: `False` trades durability on power loss for speed (a process crash is
            still safe).
        interval: The shortest time between two writes, in seconds; `0` writes every save.
        clock: Returns the time in seconds; injectable for tests.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.interval = interval
        self._clock = clock
        self._written_at: float | None = None
        self._pending: Any = _NOTHING
        self._lock = threading.Lock()

    def save(self, seq: Any) -> None:
        with self._lock:
            now = self._clock()
            if self._written_at is not None and now - self._written_at < self.interval:
                self._pending = seq
                return
            self._write(seq)
            self._written_at = now
            self._pending = _NOTHING

    def save_final(self, seq: Any, timeout: float) -> None:
        with self._lock:
            self._write(seq)
            self._written_at = self._clock()
            self._pending = _NOTHING

    def flush(self) -> None:
        """Write a save that is waiting for its interval, if any."""
        with self._lock:
            if self._pending is not _NOTHING:
                self._write(self._pending)
                self._written_at = self._clock()
                self._pending = _NOTHING

    def load(self) -> Any:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return _json.loads(data)["seq"]

    def _write(self, seq: Any) -> None:
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_json.dumps({"seq": seq}))
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            # Make the rename itself durable.
            try:
                dir_fd = os.open(directory, os.O_RDONLY)
            except OSError:
                return
            try:
                os.fsync(dir_fd)
            except OSError:
                pass
            finally:
                os.close(dir_fd)

    def __repr__(self) -> str:
        return f"FileCheckpoint({str(self.path)!r})"


class LocalDocCheckpoint(CheckpointStore):
    """A `_local/<id>` document in the database itself (never replicated, no history).

    Stores `{"seq": ...}`; keeps the document's `_rev` and, on a conflict (another
    writer), re-reads it once and overwrites.

    Args:
        database: The [Database][cloudsync.Database] to keep it in.
        id: The document's id, with or without `_local/`.
    """

    def __init__(self, database: Any, id: str = "cloudsync-checkpoint") -> None:
        self.database = database
        self.id = id if id.startswith("_local/") else f"_local/{id}"
        self._rev: str | None = None

    def load(self) -> Any:
        return self._load()

    def _load(self, **request_options: Any) -> Any:
        try:
            doc = self.database.read_local(self.id, **request_options)
        except NotFound:
            self._rev = None
            return None
        self._rev = doc.get("_rev")
        return doc.get("seq")

    def save(self, seq: Any) -> None:
        self._put(seq, None)

    def save_final(self, seq: Any, timeout: float) -> None:
        """Bounded by `timeout` in all (a hung server must not hold up close()): each
        request is tried once, with what is left of it.

        Args:
            seq: The seq to save.
            timeout: Seconds within which it returns.

        Raises:
            Conflict: Another writer won twice in a row.
        """
        self._put(seq, time.monotonic() + timeout)

    def _put(self, seq: Any, deadline: float | None) -> None:
        def options() -> dict[str, Any]:
            if deadline is None:
                return {}
            left = max(0.01, deadline - time.monotonic())
            return {"timeout": (left, left), "retry": RetryPolicy.never()}

        for _ in range(2):
            body: dict[str, Any] = {"seq": seq}
            if self._rev is not None:
                body["_rev"] = self._rev
            try:
                answer = self.database.write_local(self.id, body, **options())
            except Conflict:
                self._load(**options())
                continue
            self._rev = answer.get("rev")
            return
        raise Conflict(409, "conflict", f"could not save checkpoint {self.id}")

    def __repr__(self) -> str:
        return f"LocalDocCheckpoint({getattr(self.database, 'name', '?')!r}, {self.id!r})"
