"""Turning feed JSON into items."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidResponse, StreamError
from ..models import Change
from .base import Item, LastSeq


def row_item(obj: Any, what: str) -> Item | None:
    """A result row (``Change``), a ``last_seq`` object (``LastSeq``), or ``None`` to skip."""
    if not isinstance(obj, dict):
        raise InvalidResponse(f"{what}: expected a JSON object, got {type(obj).__name__}")
    if "id" in obj:
        try:
            return Change.from_row(obj)
        except (KeyError, TypeError) as exc:
            raise InvalidResponse(f"{what}: malformed change row {obj!r:.200}") from exc
    if "last_seq" in obj:
        return LastSeq(obj["last_seq"])
    if "error" in obj:
        # CouchDB reports a failure after the 200 status as an error row.
        raise StreamError(f"{what}: server error in feed: {obj.get('error')}: {obj.get('reason')}")
    return None
