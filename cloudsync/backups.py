"""Backup and restore in the file format of `@cloudant/couchbackup` (2.x).

A backup file is text, one JSON value per line:

- line 1, a header: `{"name": ..., "version": ..., "mode": "full" | "shallow", "attachments": false}`;
- then one JSON array of documents per batch;
- `{"marker": "@cloudant/couchbackup:resume"}` where a backup was resumed (it may end a
  line cut short by the interruption: such a line is skipped on restore).

A full backup keeps every leaf revision of every document, deleted and conflicting ones
included, each with its `_revisions` history, read with `_bulk_get`; a restore stores them
with `new_edits: false`, so the restored database has the same revision trees' leaves. A
shallow backup keeps each document's winning revision only (`_all_docs`), without
deleted documents.

A full backup first lists the documents (`_changes`) into a log file, batch by batch
(`:t batchN [ids]`, then `:changes_complete SEQ`), and marks each batch written to the
backup file (`:d batchN`). `resume=True` reads the log and writes only the batches not
marked done: the same log couchbackup's `--resume` reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, Literal

from . import _json
from .errors import CloudSyncError, NotFound

if TYPE_CHECKING:
    from .database import Database

__all__ = ["BackupError", "BackupFileError", "backup", "restore"]

log = logging.getLogger("cloudsync")

Progress = Callable[[int, "int | None"], Any]
"""Called as `progress(done, total)`: documents written so far, and in all when known."""

FORMAT_NAME = "@cloudant/couchbackup"
"""The header's `name`: couchbackup's own, so that its tools and ours read one format."""
FORMAT_VERSION = "2.11.12"
"""The couchbackup version whose format this module writes."""
RESUME_MARKER_NAME = "@cloudant/couchbackup:resume"
RESUME_MARKER = b'{"marker":"@cloudant/couchbackup:resume"}'

SPOOL_PAGE = 10_000
"""Feed rows a listing request asks for (as couchbackup's changes follower does): one
request per batch cost the server more than the rows themselves."""

_LOG_LINE = re.compile(rb"^:(t|d)\s+batch(\d+)\s*(.*)$|^:changes_complete\b")


class BackupError(CloudSyncError):
    """A backup or restore could not go on: the server refused documents, has no
    `_bulk_get`, or a log file cannot be resumed from."""


class BackupFileError(BackupError, ValueError):
    """A backup file is malformed or truncated. Everything before `line` was restored.

    Args:
        message: What is wrong.
        line: The 1-based line number of the bad line. Kept as the `line` attribute.
        restored: Documents restored before it. Kept as the `restored` attribute.
    """

    def __init__(self, message: str, *, line: int, restored: int) -> None:
        super().__init__(f"line {line} of the backup file: {message} ({restored} documents restored before it)")
        self.line = line
        self.restored = restored


class _BadLine(Exception):
    """A line of a backup file that is no batch; `restore()` says where."""


# -- backup ---------------------------------------------------------------------------------
def backup(
    db: Database,
    file: str | os.PathLike[str] | IO[bytes],
    *,
    progress: Progress | None = None,
    mode: Literal["full", "shallow"] = "full",
    log_file: str | os.PathLike[str] | None = None,
    resume: bool = False,
    batch_size: int = 500,
    parallelism: int = 5,
    attachments: bool = False,
) -> int:
    """Back a database up into a file, in couchbackup's format; memory stays bounded
    (a few batches), whatever the database's size.

    Args:
        db: The database to back up.
        file: A path, or a binary file object open for writing. With `resume`, a path is
            appended to.
        progress: Called as `progress(done, total)` after each batch is written:
            documents written so far and in all (`None` while unknown: shallow mode).
        mode: `"full"`: every leaf revision (conflicts and deletions too) with its
            history; `"shallow"`: each document's winning revision only, faster.
        log_file: The log a full backup keeps to be resumable; by default `file` with
            `.log` added (a temporary file when `file` is a file object).
        resume: Go on with an interrupted full backup: the batches the log does not mark
            done are appended to `file`. A log whose listing did not finish starts over.
        batch_size: Documents per request and per line of the file.
        parallelism: Batches fetched at the same time.
        attachments: Put attachments' content in the file (base64, inline), as
            couchbackup's `--attachments`; otherwise only their stubs.

    Returns:
        The number of document revisions written by this call.

    Raises:
        NotFound: The database does not exist.
        BackupError: The server has no `_bulk_get` (use `mode="shallow"`), or `resume`
            without a log file.
        ValueError: A bad option.
    """
    if mode not in ("full", "shallow"):
        raise ValueError('mode must be "full" or "shallow"')
    if batch_size < 1 or parallelism < 1:
        raise ValueError("batch_size and parallelism must be positive")
    if resume and mode != "full":
        raise ValueError("only a full backup can be resumed")
    db.info()  # a missing database is a NotFound now, not an empty backup
    header = {"name": FORMAT_NAME, "version": FORMAT_VERSION, "mode": mode, "attachments": attachments}
    log_path, temporary_log = _log_path(file, log_file, resume)
    try:
        if mode == "full" and resume and not _spool_complete(log_path):
            log.info("backup log %s has an incomplete listing: starting over", log_path)
            resume = False
        with _opened(file, append=resume) as out:
            out.write(RESUME_MARKER + b"\n" if resume else _json.dumps(header) + b"\n")
            out.flush()
            if mode == "shallow":
                return _shallow(db, out, batch_size, attachments, progress)
            if not resume:
                _spool(db, log_path, batch_size)
            return _full(db, out, log_path, parallelism, attachments, progress)
    finally:
        if temporary_log:
            with contextlib.suppress(OSError):
                os.unlink(log_path)


def _log_path(
    file: str | os.PathLike[str] | IO[bytes], log_file: str | os.PathLike[str] | None, resume: bool
) -> tuple[str, bool]:
    if log_file is not None:
        path = os.fspath(log_file)
    elif isinstance(file, (str, os.PathLike)):
        path = os.fspath(file) + ".log"
    elif resume:
        raise BackupError("resuming a backup into a file object needs its log_file")
    else:
        handle, path = tempfile.mkstemp(prefix="cloudsync-backup-", suffix=".log")
        os.close(handle)
        return path, True
    if resume and not os.path.exists(path):
        raise BackupError(f"cannot resume: there is no log file {path}")
    return path, False


@contextlib.contextmanager
def _opened(file: str | os.PathLike[str] | IO[bytes], *, append: bool) -> Iterator[IO[bytes]]:
    if isinstance(file, (str, os.PathLike)):
        with open(file, "ab" if append else "wb") as out:
            yield out
    else:
        yield file


def _log_lines(path: str) -> Iterator[tuple[bytes, int | None, bytes]]:
    """`(command, batch, rest)` of each well-formed log line; other lines (a line cut
    short by an interruption) are skipped, as couchbackup does."""
    with open(path, "rb") as lines:
        for line in lines:
            match = _LOG_LINE.match(line.rstrip(b"\r\n"))
            if match is None:
                continue
            if match.group(1) is None:
                yield b"changes_complete", None, b""
            else:
                yield match.group(1), int(match.group(2)), match.group(3)


def _spool_complete(path: str) -> bool:
    return any(command == b"changes_complete" for command, _, _ in _log_lines(path))


def _spool(db: Database, path: str, batch_size: int) -> None:
    """List every document's leaf revisions into the log, a batch (`batch_size` rows) a line."""
    since: Any = 0
    batch = 0
    page_size = max(batch_size, SPOOL_PAGE)
    with open(path, "wb") as out:
        while True:
            answer = db.request(
                "GET", "_changes", params={"style": "all_docs", "since": since, "limit": page_size},
                timeout=(10, 300),
            )
            rows = answer.get("results") or []
            for start in range(0, len(rows), batch_size):
                wanted = [want for row in rows[start:start + batch_size] if not row["id"].startswith("_local/")
                          for want in _leaves(row)]
                if wanted:
                    out.write(b":t batch%d " % batch + _json.dumps(wanted) + b"\n")
                    batch += 1
            since = answer.get("last_seq", rows[-1].get("seq") if rows else since)
            if len(rows) < page_size:
                break
        out.write(b":changes_complete " + _json.dumps(since) + b"\n")
        out.flush()


def _leaves(row: dict[str, Any]) -> list[dict[str, str]]:
    """What `_bulk_get` is asked for a feed row: the id alone for a live document with one
    leaf (answered faster, and as couchbackup asks), else each leaf by rev (pouchdb-server
    answers an id alone with the winner only, and CouchDB a deleted one with not_found)."""
    changes = row.get("changes") or ()
    if len(changes) == 1 and not row.get("deleted"):
        return [{"id": row["id"]}]
    return [{"id": row["id"], "rev": change["rev"]} for change in changes]


def _full(
    db: Database, out: IO[bytes], log_path: str, parallelism: int, attachments: bool, progress: Progress | None
) -> int:
    todo: dict[int, bytes] = {}
    sizes: dict[int, int] = {}
    for command, batch, rest in _log_lines(log_path):
        if command == b"t" and batch is not None:
            todo[batch] = rest
            sizes[batch] = rest.count(b'"id"')
        elif command == b"d" and batch is not None:
            todo.pop(batch, None)
    total = sum(sizes.values())
    done = total - sum(sizes[batch] for batch in todo)
    params = {"revs": "true", **({"attachments": "true"} if attachments else {})}

    def fetch(wanted: bytes) -> list[dict[str, Any]]:
        try:
            answer = db.request("POST", "_bulk_get", params=params, json={"docs": _json.loads(wanted)},
                                idempotent=True, timeout=(10, 300))
        except NotFound as exc:
            raise BackupError("the server has no _bulk_get: use mode='shallow'") from exc
        return [
            entry["ok"]
            for result in answer.get("results") or ()
            for entry in result.get("docs") or ()
            if isinstance(entry, dict) and isinstance(entry.get("ok"), dict)
        ]

    written = 0
    with open(log_path, "ab") as done_log:
        for batch, docs in _in_order(fetch, todo.items(), parallelism):
            out.write(_json.dumps(docs) + b"\n")
            out.flush()  # the line is in the file before the log says it is
            done_log.write(b":d batch%d\n" % batch)
            done_log.flush()
            written += len(docs)
            done += sizes[batch]
            if progress is not None:
                progress(done, total)
    return written


def _in_order(
    fetch: Callable[[bytes], list[dict[str, Any]]], batches: Iterable[tuple[int, bytes]], parallelism: int
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Fetch batches `parallelism` at a time and yield them in order; at most twice
    `parallelism` are held."""
    with ThreadPoolExecutor(parallelism, thread_name_prefix="cloudsync-backup") as pool:
        window: list[tuple[int, Future[list[dict[str, Any]]]]] = []
        try:
            for batch, wanted in batches:
                window.append((batch, pool.submit(fetch, wanted)))
                if len(window) >= 2 * parallelism:
                    first, future = window.pop(0)
                    yield first, future.result()
            for batch, future in window:
                yield batch, future.result()
            window = []
        finally:
            for _, future in window:
                future.cancel()


def _shallow(db: Database, out: IO[bytes], batch_size: int, attachments: bool, progress: Progress | None) -> int:
    written = 0
    batch: list[dict[str, Any]] = []

    def write() -> None:
        nonlocal written
        out.write(_json.dumps(batch) + b"\n")
        out.flush()
        written += len(batch)
        batch.clear()
        if progress is not None:
            progress(written, None)

    params = {"include_docs": "true", "limit": batch_size, **({"attachments": "true"} if attachments else {})}
    startkey: str | None = None
    while True:
        page = dict(params)
        if startkey is not None:
            page["startkey"] = _json.dumps(startkey).decode()
        rows = db.request("GET", "_all_docs", params=page, timeout=(10, 300)).get("rows") or []
        batch.extend(row["doc"] for row in rows if isinstance(row.get("doc"), dict))
        if batch:
            write()
        if len(rows) < batch_size:
            return written
        startkey = rows[-1]["id"] + "\0"  # the next id after the last one, as couchbackup pages


# -- restore --------------------------------------------------------------------------------
def restore(
    file: str | os.PathLike[str] | IO[bytes],
    db: Database,
    *,
    progress: Progress | None = None,
    batch_size: int = 500,
) -> int:
    """Restore a backup file (couchbackup's format, full or shallow) into a database,
    reading it line by line (memory stays bounded).

    Documents with a `_rev` are stored as they are (`new_edits: false`): restoring the
    same file again changes nothing, so an interrupted restore is resumed by running it
    again. Documents without one (a file made by hand) are stored as new documents.

    Args:
        file: A path, or a binary file object open for reading.
        db: The database to restore into (it must exist; empty, usually).
        progress: Called as `progress(done, None)` after each batch: documents restored
            so far (the total is not known before the file is read).
        batch_size: Documents per `_bulk_docs` request.

    Returns:
        The number of documents restored.

    Raises:
        BackupFileError: A line is not JSON, or not a batch (an array of documents), or
            the file ends in the middle of a line. Every batch before it was restored.
        BackupError: The server refused documents (the first few are named).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    restored = 0
    pending: list[dict[str, Any]] = []

    def send() -> None:
        nonlocal restored
        _store(db, pending)
        restored += len(pending)
        pending.clear()
        if progress is not None:
            progress(restored, None)

    with _reading(file) as lines:
        for number, line in enumerate(lines, start=1):
            try:
                docs = _batch_of(line)
            except _BadLine as exc:
                if pending:  # what came before the bad line is kept
                    send()
                raise BackupFileError(str(exc), line=number, restored=restored) from exc.__cause__
            for doc in docs:
                pending.append(doc)
                if len(pending) >= batch_size:
                    send()
    if pending:
        send()
    return restored


@contextlib.contextmanager
def _reading(file: str | os.PathLike[str] | IO[bytes]) -> Iterator[Iterable[bytes]]:
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as lines:
            yield lines
    else:
        yield file


def _batch_of(line: bytes | str) -> list[dict[str, Any]]:
    """The documents of one line of a backup file (none for the header, a resume marker
    or a blank line)."""
    raw = line.encode() if isinstance(line, str) else line
    complete = raw.endswith(b"\n")
    text = raw.strip()
    if not text or text == RESUME_MARKER:
        return []
    try:
        value = _json.loads(text)
    except _json.JSONDecodeError as exc:
        if text.endswith(RESUME_MARKER):
            return []  # a line cut short by an interruption, then the resumed backup's marker
        what = "the file ends in the middle of a line (truncated)" if not complete else "not valid JSON"
        raise _BadLine(what) from exc
    if isinstance(value, list):
        if not all(isinstance(doc, dict) for doc in value):
            raise _BadLine("a batch holds something that is not a document")
        return value
    if isinstance(value, dict) and (value.get("marker") == RESUME_MARKER_NAME or {"name", "version", "mode"} <= value.keys()):
        return []  # the resume marker, or the header
    raise _BadLine("neither a batch of documents nor a header")



def _store(db: Database, docs: list[dict[str, Any]]) -> None:
    as_given = [doc for doc in docs if "_rev" in doc]
    new = [doc for doc in docs if "_rev" not in doc]
    refused: list[dict[str, Any]] = []
    if as_given:
        rows = db.request("POST", "_bulk_docs", json={"docs": as_given, "new_edits": False},
                          idempotent=True, timeout=(10, 300))
        refused += [row for row in rows or () if isinstance(row, dict) and "error" in row]
    if new:
        rows = db.request("POST", "_bulk_docs", json={"docs": new}, timeout=(10, 300))
        refused += [row for row in rows if isinstance(row, dict) and "error" in row]
    if refused:
        named = ", ".join(f"{row.get('id')}: {row.get('error')}" for row in refused[:5])
        raise BackupError(f"the server refused {len(refused)} documents ({named})")
