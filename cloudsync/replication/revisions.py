"""The revisions a batch of changes brings: which the target lacks (`_revs_diff`), read
from the source (`_bulk_get`, or `open_revs` per document where there is no
`_bulk_get`) with their history, and stored as they are (`_bulk_docs` with
`new_edits: false`).

Documents without attachments go in one `_bulk_docs` per batch. A document with
attachments is read again with their content, in groups whose content adds up to at
most `attachment_bytes` (one larger document is a group of its own), so memory stays
bounded whatever the attachments weigh; `atts_since` lets the source send stubs for
content the target has already (the target finds it by digest).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import HTTPError, PreconditionFailed
from ..models import Change
from .checkpoints import SessionStats

__all__ = ["Batch", "Revisions", "Stopped"]

log = logging.getLogger("cloudsync.replication")

_NO_BULK_GET = frozenset({400, 404, 405, 501})
"""Statuses with which a server without `_bulk_get` answers it."""


@dataclass
class Batch:
    """One batch of changes on its way through the pipeline.

    Args:
        seq: Where the source's feed is once this batch is on the target.
        changes: Rows of the feed it holds.
    """

    seq: Any
    changes: int
    docs: list[dict[str, Any]] = field(default_factory=list)
    """Revisions ready to store (no attachment content to fetch)."""
    with_attachments: list[tuple[str, str, list[str], int]] = field(default_factory=list)
    """`(id, rev, possible ancestors, content bytes estimate)` to read again with content."""


def _gen(rev: str) -> int:
    head, _, _ = rev.partition("-")
    return int(head) if head.isdigit() else 0


def _content_estimate(doc: dict[str, Any], ancestors: list[str]) -> int:
    """Bytes of attachment content the source will send for `doc`: the attachments newer
    than the newest ancestor the target has."""
    known = max((_gen(a) for a in ancestors), default=0)
    total = 0
    for stub in doc["_attachments"].values():
        if isinstance(stub, dict) and not (isinstance(stub.get("revpos"), int) and stub["revpos"] <= known):
            length = stub.get("length")
            total += length if isinstance(length, int) and length > 0 else 1
    return total


def _found(entries: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The documents of `_bulk_get` or `open_revs` entries (`{"ok": doc}`), skipping
    missing revisions (`{"missing": rev}`, `{"error": ...}`)."""
    for entry in entries:
        doc = entry.get("ok") if isinstance(entry, dict) else None
        if isinstance(doc, dict) and isinstance(doc.get("_id"), str) and isinstance(doc.get("_rev"), str):
            yield doc
        else:
            log.debug("source has no revision for %r", entry)


class Revisions:
    """Reads what the target lacks from the source, and stores it on the target.

    Args:
        source: The source [Database][cloudsync.Database].
        target: The target [Database][cloudsync.Database].
        use_bulk_get: `True` or `False` to use `_bulk_get` or not; `None` finds out
            (a server that has none answers 404, 405 or 400).
        attachment_bytes: The most attachment content read in one request (about).
        workers: Parallel `open_revs` requests, without `_bulk_get`.
    """

    def __init__(self, source: Any, target: Any, *, use_bulk_get: bool | None = None,
                 attachment_bytes: int = 16 << 20, workers: int = 4) -> None:
        self.source = source
        self.target = target
        self.use_bulk_get = use_bulk_get
        self.attachment_bytes = attachment_bytes
        self.workers = workers

    # -- reading ---------------------------------------------------------------------
    def missing(self, changes: list[Change], stats: SessionStats) -> dict[str, dict[str, Any]]:
        """`_revs_diff` of the leaf revisions in `changes` against the target."""
        revs: dict[str, list[str]] = {}
        for change in changes:
            known = revs.setdefault(change.id, [])
            known.extend(r for r in (change.revs or ((change.rev,) if change.rev else ())) if r not in known)
        stats.missing_checked += sum(len(r) for r in revs.values())
        if not revs:
            return {}
        diff = self.target.revs_diff(revs)
        stats.missing_found += sum(len(d.get("missing") or ()) for d in diff.values() if isinstance(d, dict))
        return diff

    def read(self, batch: Batch, diff: dict[str, dict[str, Any]], stats: SessionStats) -> None:
        """Read the missing revisions into `batch` (documents with attachments only
        noted, to be read with their content by `write`)."""
        wanted = [(doc_id, rev) for doc_id, d in diff.items() if isinstance(d, dict)
                  for rev in d.get("missing") or ()]
        if not wanted:
            return
        seen: set[tuple[str, str]] = set()
        for doc in self._fetch(wanted, attachments=False, ancestors=None):
            key = (doc["_id"], doc["_rev"])
            if key in seen:  # `latest` led two missing revs to one leaf
                continue
            seen.add(key)
            stats.docs_read += 1
            atts = doc.get("_attachments")
            if isinstance(atts, dict) and atts:
                ancestors = list(diff.get(doc["_id"], {}).get("possible_ancestors") or ())
                batch.with_attachments.append((doc["_id"], doc["_rev"], ancestors, _content_estimate(doc, ancestors)))
            else:
                batch.docs.append(doc)

    def _fetch(self, wanted: list[tuple[str, str]], *, attachments: bool,
               ancestors: dict[str, list[str]] | None) -> list[dict[str, Any]]:
        """The revisions `wanted` from the source, with their `_revisions`; with
        `attachments`, with content past the `ancestors` of each document."""
        if self.use_bulk_get is not False:
            items = []
            for doc_id, rev in wanted:
                item: dict[str, Any] = {"id": doc_id, "rev": rev}
                if ancestors and ancestors.get(doc_id):
                    item["atts_since"] = ancestors[doc_id]
                items.append(item)
            try:
                results = self.source.bulk_get(items, revs=True, latest=True, attachments=attachments)
            except HTTPError as exc:
                if self.use_bulk_get is not None or exc.status not in _NO_BULK_GET:
                    raise
                log.info("the source has no _bulk_get (%s): reading documents with open_revs", exc)
                self.use_bulk_get = False
            else:
                self.use_bulk_get = True
                return list(_found(d for row in results if isinstance(row, dict) for d in row.get("docs") or ()))
        by_doc: dict[str, list[str]] = {}
        for doc_id, rev in wanted:
            by_doc.setdefault(doc_id, []).append(rev)

        def open_revs(doc_id: str) -> list[dict[str, Any]]:
            return self.source.open_revs(doc_id, by_doc[doc_id], history=True, latest=True, attachments=attachments,
                                         atts_since=(ancestors or {}).get(doc_id) or None)

        if len(by_doc) == 1 or self.workers <= 1:
            answers = [open_revs(doc_id) for doc_id in by_doc]
        else:
            with ThreadPoolExecutor(min(self.workers, len(by_doc)), thread_name_prefix="cloudsync-open-revs") as pool:
                answers = list(pool.map(open_revs, by_doc))
        return [doc for answer in answers for doc in _found(answer)]

    # -- writing ---------------------------------------------------------------------
    def write(self, batch: Batch, stats: SessionStats, stopping: Callable[[], bool] = lambda: False) -> None:
        """Store the batch's revisions on the target: the plain ones at once, those with
        attachments group by group, each read with its content just before."""
        if batch.docs:
            self._store(batch.docs, stats)
            batch.docs = []
        for group in self._groups(batch.with_attachments):
            if stopping():
                raise Stopped()
            ancestors = {doc_id: anc for doc_id, _, anc, _ in group if anc}
            docs = self._fetch([(doc_id, rev) for doc_id, rev, _, _ in group], attachments=True, ancestors=ancestors)
            try:
                failed = self._store(docs, stats, missing_stub_ok=True)
            except PreconditionFailed:  # pouchdb-server refuses the whole request for one stub
                failed = {doc["_id"] for doc in docs}
            if failed:
                # The target lacks content a stub names: send those with all their content.
                retry = [(doc_id, rev) for doc_id, rev, _, _ in group if doc_id in failed]
                for one in retry:
                    self._store(self._fetch([one], attachments=True, ancestors=None), stats)
        batch.with_attachments = []

    def _groups(self, entries: list[tuple[str, str, list[str], int]]) -> Iterator[list[tuple[str, str, list[str], int]]]:
        group: list[tuple[str, str, list[str], int]] = []
        size = 0
        for entry in entries:
            if group and size + entry[3] > self.attachment_bytes:
                yield group
                group, size = [], 0
            group.append(entry)
            size += entry[3]
        if group:
            yield group

    def _store(self, docs: list[dict[str, Any]], stats: SessionStats, *, missing_stub_ok: bool = False) -> set[str]:
        """`_bulk_docs` with `new_edits: false`; counts what was written. With
        `missing_stub_ok`, documents refused for a missing stub are returned, not counted."""
        if not docs:
            return set()
        results = self.target.bulk(docs, new_edits=False, batch_size=len(docs))  # one request per group
        stubs: set[str] = set()
        failures = 0
        for result in results:
            if result.error is None:
                continue
            if missing_stub_ok and result.error == "missing_stub" and result.id is not None:
                stubs.add(result.id)
                continue
            failures += 1
            log.warning("target refused %s: %s: %s", result.id, result.error, result.reason)
        stats.doc_write_failures += failures
        stats.docs_written += len(docs) - failures - sum(1 for d in docs if d["_id"] in stubs)
        return stubs


class Stopped(Exception):
    """The replication is stopping: the batch is left unfinished (its seq is not recorded)."""
