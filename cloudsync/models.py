"""Small value types returned by cloudsync."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BulkResult", "Change"]


@dataclass(frozen=True, slots=True)
class Change:
    """One row of a ``_changes`` feed.

    ``seq`` is opaque: an integer on some servers, a string such as ``"13-g1AAAA…"`` on
    CouchDB 3. Store it as received; never compare or do arithmetic on it.
    """

    seq: Any
    id: str
    rev: str | None = None
    deleted: bool = False
    doc: dict[str, Any] | None = None
    #: Every leaf revision the server listed (``style=all_docs``); ``rev`` is the first.
    revs: tuple[str, ...] = field(default=())

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Change:
        """Build a change from a ``_changes`` result row (CouchDB or Sync Gateway shape)."""
        if cls is Change:
            return _change_from_row(row)
        return cls(*_fields_from_row(row))


def _fields_from_row(row: dict[str, Any]) -> tuple[Any, str, str | None, bool, Any, tuple[str, ...]]:
    changes = row.get("changes")
    if changes.__class__ is list and len(changes) == 1 and changes[0].__class__ is dict and "rev" in changes[0]:
        revs: tuple[str, ...] = (changes[0]["rev"],)  # the usual shape, without the generator
    else:
        revs = tuple(c["rev"] for c in changes or () if isinstance(c, dict) and "rev" in c)
    doc = row.get("doc")
    rev = revs[0] if revs else (doc.get("_rev") if isinstance(doc, dict) else None)
    return row.get("seq"), row["id"], rev, True if row.get("deleted", False) else False, doc, revs


# A frozen dataclass's __init__ sets each field through object.__setattr__, which costs
# about as much as parsing the row. Feeds build hundreds of thousands of changes a second,
# so they fill the slots through the slot descriptors directly: the same object, built
# about twice as fast.
_new = object.__new__
_slot_setters = tuple(Change.__dict__[name].__set__ for name in Change.__slots__)
assert Change.__slots__ == ("seq", "id", "rev", "deleted", "doc", "revs")


def _change_from_row(row: dict[str, Any], _new: Any = _new, _setters: Any = _slot_setters) -> Change:
    changes = row.get("changes")
    doc = row.get("doc")
    if changes.__class__ is list and len(changes) == 1 and changes[0].__class__ is dict and "rev" in changes[0]:
        rev = changes[0]["rev"]  # the usual shape, inlined
        revs: tuple[str, ...] = (rev,)
        seq, doc_id, deleted = row.get("seq"), row["id"], True if row.get("deleted", False) else False
    else:
        seq, doc_id, rev, deleted, doc, revs = _fields_from_row(row)
    change = _new(Change)
    set_seq, set_id, set_rev, set_deleted, set_doc, set_revs = _setters
    set_seq(change, seq)
    set_id(change, doc_id)
    set_rev(change, rev)
    set_deleted(change, deleted)
    set_doc(change, doc)
    set_revs(change, revs)
    return change


@dataclass(frozen=True, slots=True)
class BulkResult:
    """The outcome of one document in a bulk write: ``ok`` with a new ``rev``, or an error."""

    id: str | None
    rev: str | None = None
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BulkResult:
        return cls(id=row.get("id"), rev=row.get("rev"), error=row.get("error"), reason=row.get("reason"))
