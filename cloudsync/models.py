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
        changes = row.get("changes") or ()
        revs = tuple(c["rev"] for c in changes if isinstance(c, dict) and "rev" in c)
        doc = row.get("doc")
        rev = revs[0] if revs else (doc.get("_rev") if isinstance(doc, dict) else None)
        return cls(
            seq=row.get("seq"),
            id=row["id"],
            rev=rev,
            deleted=bool(row.get("deleted", False)),
            doc=doc,
            revs=revs,
        )


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
