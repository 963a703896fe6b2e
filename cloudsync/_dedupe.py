"""The subscription's dedupe window: which revisions of which documents were delivered.

A feed may replay rows (a reconnect resumes from the last *delivered* change while the
broken connection's rows are still queued; CouchDB may rewind). A row is a replay when
the revisions it lists for its document were all delivered together before; a row whose
revisions differ (a new winner, a new conflict leaf, a deleted losing branch, with
`style=all_docs`) is new. (With the default style a row lists only the winner, so a
document whose winner goes back to one delivered before, its conflicting successor
deleted, reads as a replay: `style=all_docs` lists the leaves, which differ.) Old
revisions stay remembered because a reconnect may reach a replica that lags behind and
lists a document's older revision again.

The window keeps at least the last `size` (document, revisions) pairs and at most
twice that, in two generations: no per-change eviction.
"""

from __future__ import annotations

from typing import Any

from .models import Change

__all__ = ["DedupeWindow"]


class DedupeWindow:
    """`id -> key` in two generations, where a key names a row's revisions: its only
    rev, or all its revs joined in a fixed order (a server may list a document's leaves
    in any order). A document with several keys in the window keeps them in a tuple, a
    set past eight: a busy document costs a hash lookup per change, not a scan of its
    history."""

    __slots__ = ("old", "room", "size", "young")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("dedupe_window must be at least 1")
        self.size = size
        self.young: dict[str, Any] = {}
        self.old: dict[str, Any] = {}
        self.room = size
        """How many more pairs the young generation takes."""

    def first_time(self, change: Change) -> bool:
        """Whether `change` is not a replay; if not, it is remembered. A row that
        names no revision is never a replay."""
        revs = change.revs
        key = "\n".join(sorted(revs)) if len(revs) > 1 else change.rev  # a rev never contains a newline
        if key is None:
            return True
        doc_id = change.id
        young = self.young
        known = young.get(doc_id)
        if known is not None and _holds(known, key):
            return False
        earlier = self.old.get(doc_id)
        if earlier is not None and _holds(earlier, key):
            return False
        if known is None:
            young[doc_id] = key  # the common case: a document not seen lately
        else:
            if known.__class__ is str:
                young[doc_id] = (known, key)
            elif known.__class__ is tuple:
                young[doc_id] = (*known, key) if len(known) < 8 else {*known, key}
            else:
                known.add(key)
            self.room -= 1  # one more pair without one more key
        if len(young) >= self.room:
            self.rotate()
        return True

    def rotate(self) -> None:
        """The young generation is full: it becomes the old one."""
        self.old, self.young = self.young, {}
        self.room = self.size


def _holds(known: Any, key: str) -> bool:
    """Whether a window entry (one key, or a tuple or set of them) holds `key`."""
    return known == key if known.__class__ is str else key in known
