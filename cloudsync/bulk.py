"""Bulk writes that stream: [BulkWrite][cloudsync.BulkWrite], the results of
[`Database.bulk()`][cloudsync.Database.bulk].

The input is read one batch at a time and each batch is one `_bulk_docs` request, sent
when its results are asked for: memory holds one batch, whatever the input's length.
Being lazy, a `BulkWrite` that is never read writes nothing; like a coroutine that is
never awaited, one dropped before it was read warns (a `RuntimeWarning` naming the line
that made it), so the mistake does not pass silently.
"""

from __future__ import annotations

import sys
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .errors import InvalidResponse
from .models import BulkResult

__all__ = ["DEFAULT_BATCH_SIZE", "BulkWrite", "check_doc"]

DEFAULT_BATCH_SIZE = 500
"""Documents per `_bulk_docs` request: small enough to bound memory and a request's time,
large enough that the per-request cost is spread thin."""

Doc = dict[str, Any]
Send = Callable[[list[Doc], bool], list[dict[str, Any]]]
"""Sends one batch (`docs`, `new_edits`); returns the server's rows."""


def check_doc(doc: Any) -> None:
    if not isinstance(doc, Mapping):
        raise TypeError(f"a document must be a mapping, not {type(doc).__name__}")


def _results(batch: list[Doc], rows: list[dict[str, Any]], new_edits: bool) -> list[BulkResult]:
    """One result per document of `batch`, in its order."""
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise InvalidResponse("_bulk_docs answered something other than a list of rows")
    if not new_edits:
        # CouchDB answers new_edits=false with the failed rows only ([] when all were
        # stored as given); pouchdb-server may list every row. Match them by id.
        failed = {row.get("id"): row for row in rows if row.get("error")}
        return [BulkResult.from_row(failed[d["_id"]]) if d["_id"] in failed
                else BulkResult(id=d["_id"], rev=d.get("_rev")) for d in batch]
    if len(rows) != len(batch):
        raise InvalidResponse(f"_bulk_docs answered {len(rows)} rows for {len(batch)} documents")
    return [BulkResult.from_row(row) for row in rows]


class BulkWrite(Iterator[BulkResult]):
    """The results of [`Database.bulk()`][cloudsync.Database.bulk]: one
    [BulkResult][cloudsync.BulkResult] per document, in input order, each batch written
    when its first result is read.

    Read it to the end: `for result in db.bulk(docs)`, `list(db.bulk(docs))` (small
    inputs), or [`run()`][cloudsync.BulkWrite.run], which keeps only the failures. One
    dropped before it was read warns (`RuntimeWarning`): it wrote nothing.

    Args:
        send: Sends one batch (internal: the database passes its own).
        docs: The documents, any iterable; read one batch at a time.
        batch_size: Documents per request.
        new_edits: Passed to `_bulk_docs`.
        origin: `(filename, lineno, module)` of the caller, named by the warning.
    """

    def __init__(
        self,
        send: Send,
        docs: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        new_edits: bool = True,
        origin: tuple[str, int, str] | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError("batch_size must be a positive int")
        self._send = send
        self._docs = iter(docs)
        self._batch_size = batch_size
        self._new_edits = new_edits
        self._origin = origin
        self._pending: deque[BulkResult] = deque()
        self._started = False
        self._done = False
        self.written = 0
        """Documents written so far."""
        self.failed = 0
        """Documents refused so far (their results carry the `error`)."""

    def __repr__(self) -> str:
        state = "done" if self._done else "reading" if self._started else "not started"
        return f"<BulkWrite {state}: {self.written} written, {self.failed} failed>"

    def __iter__(self) -> BulkWrite:
        return self

    def __next__(self) -> BulkResult:
        self._started = True
        while not self._pending:
            if self._done:
                raise StopIteration
            self._write_batch()
        return self._pending.popleft()

    def _write_batch(self) -> None:
        batch: list[Doc] = []
        for doc in self._docs:
            check_doc(doc)
            batch.append(dict(doc) if "_id" in doc else {**doc, "_id": uuid.uuid4().hex})
            if len(batch) == self._batch_size:
                break
        else:
            self._done = True
        if not batch:
            return
        results = _results(batch, self._send(batch, self._new_edits), self._new_edits)
        ok = sum(1 for r in results if r.ok)
        self.written += ok
        self.failed += len(results) - ok
        self._pending.extend(results)

    def run(self) -> list[BulkResult]:
        """Write every remaining document, keeping only the results that failed.

        Returns:
            The failed results (`conflict`, `forbidden`...), in order; empty when every
                document was written. Memory grows with the failures only.
        """
        return [result for result in self if not result.ok]

    def close(self) -> None:
        """Stop: no further batch is read or sent, and no warning is given. Results of a
        batch already sent are dropped."""
        self._started = self._done = True
        self._pending.clear()

    def __del__(self) -> None:
        if getattr(self, "_started", True) or self._origin is None:
            return
        filename, lineno, module = self._origin
        warnings.warn_explicit(
            "db.bulk() was never read, so nothing was written: iterate its results, "
            "or call .run()", RuntimeWarning, filename, lineno, module=module,
        )


def caller(depth: int = 2) -> tuple[str, int, str]:
    """`(filename, lineno, module)` of the frame `depth` levels above this one."""
    frame = sys._getframe(depth)
    return frame.f_code.co_filename, frame.f_lineno, frame.f_globals.get("__name__", "")
