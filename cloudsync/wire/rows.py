"""Result rows into items: the one place a feed's JSON becomes a [Change][cloudsync.Change] or a
[LastSeq][cloudsync.LastSeq], and the one "row per line" fast path every parser uses.

Every failure is a cloudsync error: [InvalidResponse][cloudsync.InvalidResponse] for JSON that does not
parse (deep nesting and numbers too large for a double included) or a row of the wrong
shape, [StreamError][cloudsync.StreamError] for a CouchDB error row. A [Change][cloudsync.Change] made here
always has a `str` id, a `str` (or no) rev, a `dict` (or no) doc and `str` revs; the
seq is kept as received (opaque).
"""

from __future__ import annotations

from typing import Any

from .. import _json
from ..errors import InvalidResponse, StreamError
from ..models import Change, ChangeBuilder, DbUpdate, Item, LastSeq, fields_from_row

__all__ = ["DECODE_ERRORS", "comma_lines_to_items", "db_update", "lines_to_items", "loads", "row_item", "rows_to_items"]


DECODE_ERRORS: tuple[type[BaseException], ...] = (*_json.JSONDecodeError, RecursionError)
"""What parsing malformed JSON raises: the stdlib parser raises RecursionError for deep
nesting (orjson a JSONDecodeError), and ValueError for an integer of over 4,300 digits."""


def loads(data: bytes | str, what: str, kind: str = "body") -> Any:
    """`data` parsed as JSON, or [InvalidResponse][cloudsync.InvalidResponse]."""
    try:
        return _json.loads(data)
    except DECODE_ERRORS as exc:
        raise InvalidResponse(f"{what}: {kind} is not JSON: {data[:80]!r}") from exc


def _preview(obj: Any) -> str:
    try:
        return repr(obj)[:200]
    except RecursionError:  # a deeply nested value the stdlib parser accepted
        return f"<deeply nested {type(obj).__name__}>"


def row_item(obj: Any, what: str, _builder: Any = ChangeBuilder, _change: Any = Change) -> Item | None:
    """A result row (`Change`), a `last_seq` object (`LastSeq`), or `None` for
    any other object (skipped).

    The usual row (one `{"rev": ...}`, a `str` id) is built first thing, as a
    mutable twin whose class is then set to `Change` (see `models.ChangeBuilder`):
    every change of every feed comes through here."""
    try:
        (first,) = obj["changes"]
        rev = first["rev"]
        doc_id = obj["id"]
    except (KeyError, TypeError, ValueError):
        pass
    else:
        doc = obj.get("doc")
        if doc_id.__class__ is str and rev.__class__ is str and (doc is None or doc.__class__ is dict):
            # `True if x else False`, not bool(x): no call, on the path of every row.
            change = _builder(obj.get("seq"), doc_id, rev, True if obj.get("deleted") else False, doc, (rev,))  # noqa: SIM210
            change.__class__ = _change
            return change  # type: ignore[no-any-return]
    if obj.__class__ is not dict:
        raise InvalidResponse(f"{what}: expected a JSON object, got {type(obj).__name__}")
    if "id" in obj:
        try:
            seq, doc_id, rev, deleted, doc, revs = fields_from_row(obj)
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidResponse(f"{what}: malformed change row {_preview(obj)}") from exc
        if (
            doc_id.__class__ is not str
            or not (rev is None or rev.__class__ is str)
            or not (doc is None or doc.__class__ is dict)
            or any(r.__class__ is not str for r in revs)
        ):
            raise InvalidResponse(f"{what}: malformed change row {_preview(obj)}")
        return Change(seq, doc_id, rev, deleted, doc, revs)
    if "db_name" in obj:
        return db_update(obj, what)
    if "last_seq" in obj:
        return LastSeq(obj["last_seq"])
    if "error" in obj:
        # CouchDB reports a failure after the 200 status as an error row.
        raise StreamError(f"{what}: server error in feed: {_preview(obj.get('error'))}: {_preview(obj.get('reason'))}")
    return None


def db_update(obj: dict[str, Any], what: str) -> DbUpdate:
    """A `_db_updates` row (`{"db_name", "type", "seq"}`) as a [DbUpdate][cloudsync.DbUpdate]."""
    db_name, event = obj.get("db_name"), obj.get("type")
    if db_name.__class__ is not str or event.__class__ is not str:
        raise InvalidResponse(f"{what}: malformed database event {_preview(obj)}")
    return DbUpdate(db_name, event, obj.get("seq"))


def rows_to_items(rows: list[Any], what: str) -> list[Item]:
    """`row_item` for each row, skipping `None`."""
    return [item for row in rows if (item := row_item(row, what)) is not None]


def lines_to_items(lines: list[bytes], what: str) -> tuple[list[Item], bool]:
    """Items of complete lines, one JSON value each (blank lines are heartbeats).

    Returns `(items, ended)`: `ended` when a `last_seq` object closed the feed;
    the items stop there.

    One parse per line, not one for the whole chunk: each row's dicts are freed as soon
    as its [Change][cloudsync.Change] is built. Parsing a chunk as one array keeps hundreds of rows'
    dicts alive at once; the garbage collector then promotes them and runs full
    collections, which cost the application far more than the calls saved.
    """
    loads = _json.loads
    decode_errors = DECODE_ERRORS
    builder: Any = ChangeBuilder
    change_class, str_class, dict_class = Change, str, dict
    items: list[Item] = []
    append = items.append
    for line in lines:
        try:
            row = loads(line)
        except decode_errors:
            if not line.strip():
                continue  # heartbeat
            raise InvalidResponse(f"{what}: malformed JSON line {line[:80]!r}") from None
        # row_item's first lines, inlined: a call per row costs 3-5% of a change.
        try:
            (first,) = row["changes"]
            rev = first["rev"]
            doc_id = row["id"]
        except (KeyError, TypeError, ValueError):
            pass
        else:
            doc = row.get("doc")
            if doc_id.__class__ is str_class and rev.__class__ is str_class and (doc is None or doc.__class__ is dict_class):
                change = builder(row.get("seq"), doc_id, rev, True if row.get("deleted") else False, doc, (rev,))  # noqa: SIM210
                change.__class__ = change_class
                append(change)
                continue
        item = row_item(row, what)
        if item is None:
            continue
        append(item)
        if item.__class__ is LastSeq:
            return items, True
    return items, False


def comma_lines_to_items(block: bytes, what: str) -> list[Item] | None:
    """The items of array elements written a row per line (`row,\nrow,\n...row`), or
    `None` unless every element is a row or a `last_seq` object (nothing skipped).

    The one "row per line" fast path of the long-poll answer and of WebSocket messages.
    A split at `,\n` can only make every piece valid JSON when the line ends are
    between the array's own elements (a raw newline never occurs inside a JSON string):
    anything else (a pretty-printed row, two rows on a line, a heartbeat) fails to
    parse or comes out short, and the caller parses it another way."""
    pieces = block.split(b",\n")
    try:
        items, _ = lines_to_items(pieces, what)
    except InvalidResponse:
        return None
    return items if len(items) == len(pieces) else None
