"""The subscription's ledger: what was handed to the application, what it acknowledged,
and what the checkpoint store holds.

Automatic acks: every change handed out is acknowledged when the application asks for
more (or calls `ack` on the last one). With `manual_ack` the application acknowledges
each change itself, from any thread, and the committed position advances over every
leading acknowledged one. A store is saved only with committed positions, every
`checkpoint_every`-th commit, and once more, bounded, on close; then it is sealed.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

from .checkpoint import CheckpointStore
from .models import Change

__all__ = ["WARN_EVERY", "Ledger"]

log = logging.getLogger("cloudsync.subscription")

WARN_EVERY = 30.0
"""Seconds between two WARNING lines about something that keeps failing."""


class Ledger:
    """Acknowledgements and checkpoint saves of one subscription. The consumer calls
    everything but [ack][cloudsync._ledger.Ledger.ack] (any thread) and
    [final_save][cloudsync._ledger.Ledger.final_save] (the closing thread)."""

    def __init__(self, checkpoint: CheckpointStore | None, every: int, manual: bool) -> None:
        self.checkpoint = checkpoint
        self.every = every
        self.manual = manual
        self.outstanding = 0
        """Automatic acks: how many changes were handed out and not yet acknowledged."""
        self.last_handed: Change | None = None
        self.committed: Any = None
        """The last position up to which every change was acknowledged."""
        # manual_ack: [seq, acked, change] per change handed out or position passed.
        self._pending: collections.deque[list[Any]] = collections.deque()
        self._pending_lock = threading.Lock()
        self._saved: Any = None
        self._unsaved = 0  # commits since the last save
        self._save_lock = threading.Lock()
        self._sealed = False  # closed: the store is not written again
        self._save_warned = -WARN_EVERY

    def begin(self, position: Any, resumed: bool) -> None:
        """Start at `position`. Unless it came from the store (`resumed`), save it now:
        a process killed before its first change must not resolve `since="now"` again
        on restart and skip what happened in between."""
        self.committed = position
        if not resumed:
            self._save(position)

    def handed(self, change: Change) -> None:
        """`change` was handed to the application."""
        if self.manual:
            with self._pending_lock:
                self._pending.append([change.seq, False, change])
        else:
            self.outstanding += 1
            self.last_handed = change

    def passed(self, seq: Any) -> None:
        """Position `seq` (not `None`) was reached with nothing to hand out (a marker or
        a duplicate): acknowledged at once unless changes handed out wait before it."""
        if self.manual:
            with self._pending_lock:
                self._pending.append([seq, True, None])
                to_save = self._commit_acked()
            self._save(to_save)
        elif not self.outstanding:  # nothing handed out waits before it
            self.outstanding = 1  # counts as one acknowledgement
            self.acknowledge(seq)

    def acknowledge(self, position: Any) -> None:
        """Automatic acks: every change handed out is acknowledged, up to `position`.
        (Once per change of a drain: `_commit` inlined.)"""
        count, self.outstanding = self.outstanding, 0
        self.last_handed = None
        if position is None or position == self.committed:
            return
        self.committed = position
        if self.checkpoint is not None:
            self._unsaved += count
            if self._unsaved >= self.every:
                self._unsaved = 0
                self._save(position)

    def ack(self, change: Change, position: Any) -> None:
        """The application acknowledges `change`; `position` is the last one handed out."""
        if not self.manual:
            # Early: only the last change handed out (from the consuming thread).
            if self.outstanding and change is self.last_handed:
                self.acknowledge(position)
            return
        with self._pending_lock:
            for entry in self._pending:
                if entry[2] is change and not entry[1]:
                    entry[1] = True
                    break
            to_save = self._commit_acked()
        self._save(to_save)

    def _commit_acked(self) -> Any:
        """Pop the acknowledged prefix (`_pending_lock` held); return the seq to save,
        if it is time to save."""
        committed = None
        while self._pending and self._pending[0][1]:
            seq = self._pending.popleft()[0]
            if seq is not None:
                committed = seq
        if committed is None:
            return None
        self.committed = committed
        self._unsaved += 1
        if self.checkpoint is None or self._unsaved < self.every:
            return None
        self._unsaved = 0
        return committed

    def _save(self, seq: Any) -> None:
        """Save `seq`; a failed save is logged and tried again at the next commit."""
        if seq is None or self.checkpoint is None:
            return
        with self._save_lock:
            if self._sealed or seq == self._saved:
                return
            try:
                self.checkpoint.save(seq)
            except Exception as exc:
                self._unsaved = self.every  # the next commit tries again
                now = time.monotonic()
                if now - self._save_warned >= WARN_EVERY:
                    self._save_warned = now
                    log.warning("could not save the checkpoint (%r): %s; will retry", self.checkpoint, exc)
                return
            self._saved = seq

    def final_save(self, deadline: float) -> None:
        """The last save, bounded by `deadline` (`time.monotonic()`); then the store is
        sealed. (A save already under way past the deadline may still complete.)"""
        if not self._save_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            self._sealed = True
            log.warning("a checkpoint save (%r) is still under way; no final save", self.checkpoint)
            return
        try:
            self._sealed = True
            seq = self.committed
            if self.checkpoint is None or seq is None:
                return  # (even a seq already saved: a store may have kept it for later)
            try:
                self.checkpoint.save_final(seq, timeout=max(0.05, deadline - time.monotonic()))
            except Exception as exc:
                log.warning("could not save the checkpoint on close (%r): %s; "
                            "the next start redelivers from the last saved position", self.checkpoint, exc)
                return
            self._saved = seq
        finally:
            self._save_lock.release()
