"""Small value types returned by cloudsync."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import _json

__all__ = ["BulkResult", "Change", "DbUpdate"]


@dataclass(frozen=True, slots=True)
class Change:
    """One row of a `_changes` feed.

    Args:
        seq: The row's position in the feed. Opaque: an integer on some servers, a string
            such as `"13-g1AAAA…"` on CouchDB 3. Store it as received; never compare or do
            arithmetic on it.
        id: The document's id.
        rev: The document's winning revision (`None` when the row names none).
        deleted: Whether the document is deleted (the row is a tombstone).
        doc: The document's body, with `include_docs`; else `None`.
        revs: Every leaf revision the server listed (`style=all_docs`); `rev` is the first.
    """

    seq: Any
    id: str
    rev: str | None = None
    deleted: bool = False
    doc: dict[str, Any] | None = None
    revs: tuple[str, ...] = field(default=())

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Change:
        """Build a change from a `_changes` result row (CouchDB or Sync Gateway shape).

        Args:
            row: The row as decoded JSON: `seq`, `id`, `changes` (a list of `{"rev": ...}`),
                and optionally `deleted` and `doc`.

        Returns:
            The change.
        """
        if cls is Change:
            return _change_from_row(row)
        return cls(*fields_from_row(row))


@dataclass(frozen=True, slots=True)
class LastSeq:
    """The server says the feed has been read up to `seq` (no change attached).

    Yielded for an empty long-poll answer or a feed's final `last_seq` line, so a
    sparse or filtered feed still advances the checkpoint.

    Args:
        seq: The position read up to; opaque, like `Change.seq`.
    """

    seq: Any


@dataclass(frozen=True, slots=True)
class DbUpdate:
    """One row of the server's `_db_updates` feed: a database was created, written to or
    deleted. What [Client.subscribe_db_updates][cloudsync.Client.subscribe_db_updates]
    delivers.

    The server keeps only the latest event of each type per database: a database written
    to many times while nobody listened is reported once, at its latest write.

    Args:
        db_name: The database's name.
        type: `"created"`, `"updated"` or `"deleted"`.
        seq: The event's position in the feed; opaque, like `Change.seq`.
    """

    db_name: str
    type: str
    seq: Any

    # What a subscription's dedupe window keys on, as it does a change's document and
    # revision: the event (CouchDB keeps one per `type:db_name`) and its seq. A replay of
    # the same row is dropped; the next write to the database has a new seq.
    @property
    def id(self) -> str:
        """The event's key, `"<type>:<db_name>"` (as CouchDB's `_global_changes` names it)."""
        return f"{self.type}:{self.db_name}"

    @property
    def rev(self) -> str | None:
        """The seq as text: which occurrence of the event this is (`None` without a seq)."""
        seq = self.seq
        if seq is None or isinstance(seq, str):
            return seq
        return _json.dumps(seq).decode()

    @property
    def revs(self) -> tuple[str, ...]:
        """Empty: an event has one occurrence key, `rev`."""
        return ()


Item = Change | LastSeq | DbUpdate
"""What a feed yields."""


def fields_from_row(row: dict[str, Any]) -> tuple[Any, str, str | None, bool, Any, tuple[str, ...]]:
    changes = row.get("changes")
    if changes.__class__ is list and len(changes) == 1 and changes[0].__class__ is dict and "rev" in changes[0]:
        revs: tuple[str, ...] = (changes[0]["rev"],)  # the usual shape, without the generator
    else:
        revs = tuple(c["rev"] for c in changes or () if isinstance(c, dict) and "rev" in c)
    doc = row.get("doc")
    rev = revs[0] if revs else (doc.get("_rev") if isinstance(doc, dict) else None)
    return row.get("seq"), row["id"], rev, True if row.get("deleted", False) else False, doc, revs  # noqa: SIM210


# A frozen dataclass's __init__ sets each field through object.__setattr__, which costs
# more than parsing the row. Feeds build hundreds of thousands of changes a second, so
# they build a mutable twin (same slots, plain assignments) and turn it into a Change by
# assigning __class__ (allowed: the layouts are identical): the same object, in about
# half the time.
@dataclass(slots=True)
class ChangeBuilder:
    seq: Any
    id: str
    rev: str | None = None
    deleted: bool = False
    doc: dict[str, Any] | None = None
    revs: tuple[str, ...] = ()


assert ChangeBuilder.__slots__ == Change.__slots__


def _change_from_row(row: dict[str, Any], _builder: Any = ChangeBuilder, _cls: Any = Change) -> Change:
    try:
        (first,) = row["changes"]  # the usual shape: exactly one {"rev": ...}
        rev = first["rev"]
    except (KeyError, TypeError, ValueError):
        change = _builder(*fields_from_row(row))
    else:
        # `True if x else False`, not bool(x): no call, on the path of every row.
        change = _builder(row.get("seq"), row["id"], rev, True if row.get("deleted") else False, row.get("doc"), (rev,))  # noqa: SIM210
    change.__class__ = _cls
    return change


@dataclass(frozen=True, slots=True)
class BulkResult:
    """The outcome of one document in a bulk write: `ok` with a new `rev`, or an error.

    Args:
        id: The document's id.
        rev: Its new revision, when the write succeeded.
        error: CouchDB's error name (`"conflict"`, `"forbidden"`...), when it failed.
        reason: The server's explanation of `error`.
    """

    id: str | None
    rev: str | None = None
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the document was written."""
        return self.error is None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BulkResult:
        return cls(id=row.get("id"), rev=row.get("rev"), error=row.get("error"), reason=row.get("reason"))
