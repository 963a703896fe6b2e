"""A replication's id and its checkpoints: `_local/<id>` documents on both sides.

The documents follow CouchDB's replicator where it and PouchDB's overlap, so either can
read what the other understands: `session_id`, `source_last_seq` (CouchDB) and
`last_seq` (PouchDB) at the top, and a `history` of sessions, newest first, each with
its `session_id` and the seq it recorded (`recorded_seq`, and `last_seq` as PouchDB
names it). Where to resume is decided as CouchDB decides it
(`couch_replicator_utils:compare_replication_logs`): the two documents name the same
session, or a session both histories hold; anything else starts over. A seq is opaque:
kept as the source gave it, never compared with another.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import _json
from ..errors import Conflict, Forbidden, NotFound, Unauthorized

__all__ = ["Checkpointer", "SessionStats", "replication_id", "resume_point"]

log = logging.getLogger("cloudsync.replication")

HISTORY_SIZE = 50
"""Sessions a checkpoint document keeps (CouchDB keeps 50, PouchDB 5)."""
ID_VERSION = 1


def replication_id(source_url: str, target_url: str, *, selector: Mapping[str, Any] | None = None,
                   doc_ids: Sequence[str] | None = None) -> str:
    """The id of a replication: the same for the same databases and filter, whichever
    process runs it, and distinct from CouchDB's and PouchDB's own (their checkpoints are
    never read or overwritten by ours).

    Args:
        source_url: The source database's URL, without credentials.
        target_url: The target database's URL, without credentials.
        selector: The Mango selector the replication is filtered by.
        doc_ids: The documents it is limited to (their order does not matter).

    Returns:
        A hex string; the checkpoint documents are `_local/<it>`.
    """
    filters: dict[str, Any] = {}
    if selector is not None:
        filters["selector"] = selector
    if doc_ids is not None:
        filters["doc_ids"] = sorted(doc_ids)
    key = _json.std_dumps(["cloudsync", ID_VERSION, source_url, target_url, _canonical(filters)])
    return hashlib.md5(key, usedforsecurity=False).hexdigest()


def _canonical(value: Any) -> Any:
    """`value` with every object's keys sorted: one encoding per meaning."""
    if isinstance(value, Mapping):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _entry_seq(entry: Mapping[str, Any]) -> Any:
    return entry.get("recorded_seq", entry.get("last_seq"))


def resume_point(source_doc: Mapping[str, Any] | None, target_doc: Mapping[str, Any] | None) -> tuple[Any, list[Any]]:
    """Where to resume, from the checkpoint documents of both sides, and the history to
    keep: CouchDB's rule (the same session on both sides, else the newest session both
    histories hold), so a checkpoint one side lost or missed never counts.

    Args:
        source_doc: The source's checkpoint document, or `None`.
        target_doc: The target's, or `None`.

    Returns:
        `(seq, history)`: `seq` is `None` to start from the beginning.
    """
    if not source_doc or not target_doc:
        return None, []
    source_history = [e for e in source_doc.get("history") or [] if isinstance(e, dict)]
    target_history = [e for e in target_doc.get("history") or [] if isinstance(e, dict)]
    session = source_doc.get("session_id")
    if session is not None and session == target_doc.get("session_id"):
        seq = source_doc.get("source_last_seq", source_doc.get("last_seq"))
        return seq, source_history
    # CouchDB's compare_rep_history, step for step: walk both histories, newest first.
    s, t = source_history, target_history
    while s and t:
        if _holds(t, s[0].get("session_id")):
            return _entry_seq(s[0]), s[1:]
        if _holds(s[1:], t[0].get("session_id")):
            return _entry_seq(t[0]), t[1:]
        s, t = s[1:], t[1:]
    return None, []


def _holds(history: list[dict[str, Any]], session: Any) -> bool:
    return session is not None and any(e.get("session_id") == session for e in history)


@dataclass
class SessionStats:
    """What a session has done, recorded in its history entry."""

    docs_read: int = 0
    docs_written: int = 0
    doc_write_failures: int = 0
    missing_checked: int = 0
    missing_found: int = 0


class Checkpointer:
    """Reads the resume point and writes checkpoints for one replication session.

    Args:
        source: The source [Database][cloudsync.Database].
        target: The target [Database][cloudsync.Database].
        rep_id: The replication id (see `replication_id`).
        session_id: This session's id (a fresh one per run).
        clock: Returns the wall time in seconds (for `start_time`/`end_time`).
    """

    def __init__(self, source: Any, target: Any, rep_id: str, session_id: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.target = target
        self.doc_id = f"_local/{rep_id}"
        self.session_id = session_id
        self._clock = clock
        self._revs: dict[int, str | None] = {0: None, 1: None}
        self._history: list[Any] = []
        self._start_seq: Any = None
        self._started = _timestamp(clock())
        self.last_saved: Any = None
        self.source_writable = True
        """Whether the source takes checkpoints (a read-only source does not: then only
        the target's is written, and no checkpoint is trusted on the next run)."""

    def load(self) -> Any:
        """The seq to resume from (`None`: from the beginning)."""
        docs = [self._read(db, side) for side, db in enumerate((self.source, self.target))]
        seq, self._history = resume_point(docs[0], docs[1])
        self._start_seq = seq
        if seq is not None:
            log.info("replication %s resumes from checkpoint %r", self.doc_id, seq)
        return seq

    def save(self, seq: Any, stats: SessionStats) -> None:
        """Record that everything up to `seq` is on the target: the target's document
        first, then the source's (CouchDB's order)."""
        entry = {"session_id": self.session_id, "start_time": self._started, "end_time": _timestamp(self._clock()),
                 "start_last_seq": self._start_seq, "end_last_seq": seq, "recorded_seq": seq, "last_seq": seq,
                 "docs_read": stats.docs_read, "docs_written": stats.docs_written,
                 "doc_write_failures": stats.doc_write_failures, "missing_checked": stats.missing_checked,
                 "missing_found": stats.missing_found}
        history = [entry, *(e for e in self._history if isinstance(e, dict) and e.get("session_id") != self.session_id)]
        body = {"session_id": self.session_id, "source_last_seq": seq, "last_seq": seq,
                "replication_id_version": ID_VERSION, "replicator": "cloudsync", "version": 1,
                "history": history[:HISTORY_SIZE]}
        self._write(self.target, 1, body)
        if self.source_writable:
            try:
                self._write(self.source, 0, body)
            except (Forbidden, Unauthorized) as exc:
                log.warning("the source refuses checkpoints (%s): only the target keeps them", exc)
                self.source_writable = False
        self.last_saved = seq

    def _read(self, db: Any, side: int) -> dict[str, Any] | None:
        try:
            doc = db.read_local(self.doc_id)
        except NotFound:
            self._revs[side] = None
            return None
        self._revs[side] = doc.get("_rev")
        return doc if isinstance(doc, dict) else None

    def _write(self, db: Any, side: int, body: dict[str, Any]) -> None:
        for _ in range(2):
            doc = dict(body)
            if self._revs[side] is not None:
                doc["_rev"] = self._revs[side]
            try:
                self._revs[side] = db.write_local(self.doc_id, doc).get("rev")
                return
            except Conflict:  # written by someone else meanwhile: take its rev, write over it
                self._read(db, side)
        raise Conflict(409, "conflict", f"could not write checkpoint {self.doc_id}: another writer keeps winning")


def _timestamp(seconds: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(seconds))
