"""A live query's results, kept in sort order: changes in, events out (no I/O).

The window holds the first documents matching the selector, in sort order: every result
(`limit` of them, or all without a limit) plus up to `margin` more, so that a result
leaving the window is replaced from memory most of the time. `complete` says whether it
holds *every* matching document; while it does not, it knows the order only up to its
last document, so a matching document that sorts after that one is not kept (it is not
known what else lies between). When fewer than `limit` are left and more may exist,
`needs_refill` asks the owner for a bounded query (`limit + margin` documents) and
`load` takes its answer, emitting the difference as events.

Events say how the visible results change, one at a time: applied in order to the list
the previous events left, each turns it into the next state (see
[LiveQueryEvent][cloudsync.LiveQueryEvent]).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SelectorError
from .selector import compile_selector, project, sort_key

__all__ = ["ADDED", "CHANGED", "MOVED", "REMOVED", "LiveQueryEvent", "ResultWindow", "diff", "parse_sort", "replay"]

ADDED, CHANGED, REMOVED, MOVED = "added", "changed", "removed", "moved"


@dataclass(frozen=True, slots=True)
class LiveQueryEvent:
    """One change of a live query's results.

    Applied in order to the results as the previous event left them (starting from the
    results before the batch), `added` inserts `doc` at `new_index`, `removed` deletes
    the document at `old_index`, `changed` replaces the document at `old_index`
    (`== new_index`), and `moved` takes the document from `old_index` and inserts `doc`
    at `new_index` (it may have changed too).

    Args:
        kind: `"added"`, `"changed"`, `"removed"` or `"moved"`.
        id: The document's id.
        doc: The document as it now is in the results (projected with `fields`); for
            `removed`, as it was.
        old_index: Its index before this event (`None` for `added`).
        new_index: Its index after this event (`None` for `removed`).
    """

    kind: str
    id: str
    doc: dict[str, Any]
    old_index: int | None = None
    new_index: int | None = None


def replay(results: Sequence[Any], events: Iterable[LiveQueryEvent]) -> list[Any]:
    """The results after `events`: what an application applying them would hold.

    Args:
        results: The results the events start from (not modified).
        events: Events of a live query, in the order they were emitted.

    Returns:
        A new list.
    """
    out = list(results)
    for event in events:
        if event.kind == ADDED:
            out.insert(event.new_index, event.doc)  # type: ignore[arg-type]
        elif event.kind == REMOVED:
            del out[event.old_index]  # type: ignore[arg-type]
        elif event.kind == CHANGED:
            out[event.old_index] = event.doc  # type: ignore[index]
        else:
            del out[event.old_index]  # type: ignore[arg-type]
            out.insert(event.new_index, event.doc)  # type: ignore[arg-type]
    return out


def parse_sort(sort: Sequence[Any] | None) -> list[tuple[str, str]]:
    """A Mango `sort` (`["a", {"b": "desc"}]`) as `(field, direction)` pairs.

    Raises:
        SelectorError: An entry that is neither a field name nor a one-field object.
    """
    if sort is None:
        return []
    if isinstance(sort, (str, Mapping)):
        raise SelectorError("sort must be a list of fields or {field: direction} objects")
    pairs = []
    for item in sort:
        if isinstance(item, str):
            pairs.append((item, "asc"))
        elif isinstance(item, Mapping) and len(item) == 1:
            ((field, direction),) = item.items()
            pairs.append((field, direction))
        else:
            raise SelectorError(f"Invalid sort field: {item!r}")
    return pairs


def _generation(doc: Mapping[str, Any]) -> int:
    rev = doc.get("_rev")
    head = rev.partition("-")[0] if isinstance(rev, str) else ""
    return int(head) if head.isdigit() else 0


class ResultWindow:
    """The sorted window of one live query. Used by one thread at a time.

    Args:
        selector: The Mango selector.
        sort: `(field, direction)` pairs; ties (and no sort at all) are ordered by `_id`
            in the direction of the first field, as an index scan orders them.
        limit: How many results at most, or `None`.
        margin: How many documents past the results to keep besides (with a limit).
        fields: Project results to these fields (`None`: whole documents).
    """

    def __init__(self, selector: Mapping[str, Any], sort: list[tuple[str, str]], limit: int | None,
                 margin: int, fields: Sequence[str] | None) -> None:
        # A sorted query returns only documents that have every sort field (an index
        # holds only those), whatever the selector says.
        wanted = dict(selector)
        if sort:
            wanted = {"$and": [wanted, *({field: {"$exists": True}} for field, _ in sort)]}
        self.matches = compile_selector(wanted)
        direction = sort[0][1] if sort else "asc"
        self.by_id = not sort and direction == "asc"
        self.key = sort_key([*sort, ("_id", direction)])
        self.limit = limit
        self.capacity = None if limit is None else limit + margin
        self.fields = list(fields) if fields is not None else None
        self.keys: list[Any] = []  # in order
        self.ids: list[str] = []  # parallel to keys
        self.docs: dict[str, dict[str, Any]] = {}
        self.key_of: dict[str, Any] = {}
        self.complete = True

    # -- reading --------------------------------------------------------------------------
    @property
    def needs_refill(self) -> bool:
        """More matching documents may exist than are held, and the results are short."""
        return not self.complete and self.limit is not None and len(self.ids) < self.limit

    def results(self) -> list[dict[str, Any]]:
        """The visible results, projected."""
        ids = self.ids if self.limit is None else self.ids[: self.limit]
        docs, output = self.docs, self.output
        return [output(docs[i]) for i in ids]

    def visible(self) -> list[tuple[str, dict[str, Any]]]:
        """The visible results as `(id, projected document)` pairs."""
        ids = self.ids if self.limit is None else self.ids[: self.limit]
        docs, output = self.docs, self.output
        return [(i, output(docs[i])) for i in ids]

    def output(self, doc: dict[str, Any]) -> dict[str, Any]:
        return doc if self.fields is None else project(doc, self.fields)

    def __len__(self) -> int:
        return len(self.ids)

    # -- changing -------------------------------------------------------------------------
    def load(self, docs: list[dict[str, Any]], complete: bool, *, report: bool = True) -> list[LiveQueryEvent]:
        """Replace the content by a query's answer (in the server's order; sorted here only
        if that disagrees), returning the events from the old results to the new (none
        without `report`: the first snapshot, which nobody has seen a before of)."""
        before = self.visible() if report else []
        keyed = [(self._key_of(d), d) for d in docs if "_id" in d]
        keys = [k for k, _ in keyed]
        if any(keys[i + 1] < keys[i] for i in range(len(keys) - 1)):
            keyed.sort(key=lambda pair: pair[0])
            keys = [k for k, _ in keyed]
        self.keys = keys
        self.ids = [d["_id"] for _, d in keyed]
        self.docs = {d["_id"]: d for _, d in keyed}
        self.key_of = dict(zip(self.ids, keys, strict=True))
        self.complete = complete
        self._trim()
        return diff(before, self.visible()) if report else []

    def apply(self, doc_id: str, doc: dict[str, Any] | None, out: list[LiveQueryEvent]) -> None:
        """A document's new state (`None` or a tombstone: deleted), appending the events
        it causes to `out`. A stale replay (an older revision than the one held) is ignored."""
        if doc_id.startswith("_design/"):
            return
        old_key = self.key_of.get(doc_id)
        if old_key is not None and doc is not None and _generation(doc) < _generation(self.docs[doc_id]):
            return
        keys, ids = self.keys, self.ids
        limit = self.limit if self.limit is not None else len(ids) + 1
        old_pos = old_doc = None
        if old_key is not None:
            old_pos = bisect.bisect_left(keys, old_key)
            del keys[old_pos], ids[old_pos]
            del self.key_of[doc_id]
            old_doc = self.docs.pop(doc_id)
        new_pos = None
        if doc is not None and not doc.get("_deleted") and self.matches(doc):
            key = self._key_of(doc)
            pos = bisect.bisect_left(keys, key)
            if self.complete or pos < len(keys):  # else it sorts past what is known
                keys.insert(pos, key)
                ids.insert(pos, doc_id)
                self.key_of[doc_id] = key
                self.docs[doc_id] = doc
                new_pos = pos
        self._events(doc_id, old_pos, old_doc, new_pos, doc, limit, out)
        self._trim()

    def _events(self, doc_id: str, old_pos: int | None, old_doc: dict[str, Any] | None, new_pos: int | None,
                doc: Any, limit: int, out: list[LiveQueryEvent]) -> None:
        was = old_pos is not None and old_pos < limit
        now = new_pos is not None and new_pos < limit
        output, ids = self.output, self.ids
        if was and now:
            new = output(doc)
            if old_pos != new_pos:
                out.append(LiveQueryEvent(MOVED, doc_id, new, old_pos, new_pos))
            elif new != output(old_doc):  # type: ignore[arg-type]
                out.append(LiveQueryEvent(CHANGED, doc_id, new, old_pos, new_pos))
        elif was:
            out.append(LiveQueryEvent(REMOVED, doc_id, output(old_doc), old_pos, None))  # type: ignore[arg-type]
            if len(ids) >= limit:  # the next one slides into the results
                slid = ids[limit - 1]
                out.append(LiveQueryEvent(ADDED, slid, output(self.docs[slid]), None, limit - 1))
        elif now:
            out.append(LiveQueryEvent(ADDED, doc_id, output(doc), None, new_pos))
            if len(ids) > limit:  # ... and pushes the last one out
                pushed = ids[limit]
                out.append(LiveQueryEvent(REMOVED, pushed, output(self.docs[pushed]), limit, None))

    def _trim(self) -> None:
        capacity = self.capacity
        if capacity is not None and len(self.ids) > capacity:
            for doc_id in self.ids[capacity:]:
                del self.docs[doc_id], self.key_of[doc_id]
            del self.keys[capacity:], self.ids[capacity:]
            self.complete = False

    def _key_of(self, doc: dict[str, Any]) -> Any:
        return doc["_id"] if self.by_id else self.key(doc)


def diff(before: list[tuple[str, dict[str, Any]]], after: list[tuple[str, dict[str, Any]]]) -> list[LiveQueryEvent]:
    """Events that turn the results `before` into `after` (`(id, doc)` pairs): removals
    from the end first, then the new order front to back (adds, moves, changes)."""
    events: list[LiveQueryEvent] = []
    wanted = {doc_id for doc_id, _ in after}
    work = list(before)
    for i in range(len(work) - 1, -1, -1):
        if work[i][0] not in wanted:
            events.append(LiveQueryEvent(REMOVED, work[i][0], work[i][1], i, None))
            del work[i]
    held = {doc_id for doc_id, _ in work}
    for i, (doc_id, doc) in enumerate(after):
        if i < len(work) and work[i][0] == doc_id:
            if work[i][1] != doc:
                events.append(LiveQueryEvent(CHANGED, doc_id, doc, i, i))
                work[i] = (doc_id, doc)
        elif doc_id in held:
            j = next(k for k in range(i + 1, len(work)) if work[k][0] == doc_id)
            events.append(LiveQueryEvent(MOVED, doc_id, doc, j, i))
            del work[j]
            work.insert(i, (doc_id, doc))
        else:
            events.append(LiveQueryEvent(ADDED, doc_id, doc, None, i))
            work.insert(i, (doc_id, doc))
    return events
