"""Input limits shared by every entry point: one JSON parser with a depth limit, strict
integers, and the per-request time budget of query evaluation.

Everything a client sends goes through here before it reaches storage or Mango, so a
bad input is a `400 bad_request` (CouchDB's error shape), never a 500 or a cut body.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import _json
from .._json import JSONDecodeError, loads
from .errors import CouchError, bad_request

__all__ = ["MAX_INT", "QueryTimeout", "budget", "check_budget", "parse_int", "parse_json", "too_deep"]

MAX_INT = (1 << 63) - 1
"""Integers a client may send where the server counts or binds them to SQLite (seqs,
limits, skips): SQLite's INTEGER is signed 64-bit."""


def too_deep(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests deeper than `limit` (one level of containers at a time:
    about 4x faster than a stack of (node, depth) pairs on a 1,000-document bulk body)."""
    level = [value]
    for _ in range(limit):
        deeper = []
        for obj in level:
            for child in obj.values() if type(obj) is dict else obj:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        if not deeper:
            return False
        level = deeper
    return True


def parse_json(data: bytes | str, limit: int, what: str = "JSON", *, malformed: str | None = None) -> Any:
    """`data` parsed, or `400 bad_request`: malformed, not UTF-8, a lone surrogate, or
    nested deeper than `limit`. No Python code recurses on the input: orjson refuses
    more than 1,024 levels natively, and the stdlib fallback's RecursionError is caught.

    `malformed` is the reason for text that does not parse; by default CouchDB's
    `invalid UTF-8 JSON` (its answer to any bad request body)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        value = loads(raw)
    except JSONDecodeError as exc:
        # orjson stops at 1,024 levels by itself ("depth limit exceeded"), without recursing.
        if "depth" in str(exc) or "recursion" in str(exc):
            raise bad_request(f"{what} nesting deeper than {limit} levels") from None
        raise bad_request(malformed or f"invalid UTF-8 {what}") from None
    except RecursionError:  # the stdlib parser (no orjson) recursing on hostile nesting
        raise bad_request(f"{what} nesting deeper than {limit} levels") from None
    # Level by level, no recursion; only when the text has more brackets than the limit.
    if (raw.count(b"[") + raw.count(b"{") > limit and isinstance(value, (dict, list))
            and too_deep(value, limit)):
        raise bad_request(f"{what} nesting deeper than {limit} levels")
    if not _json.HAS_ORJSON and b"\\u" in raw:
        _check_surrogates(value, what)
    return value


def _check_surrogates(value: Any, what: str) -> None:
    # orjson refuses lone surrogates itself; the stdlib parser accepts them, and neither
    # SQLite nor the encoder can store one.
    stack = [value]
    while stack:
        obj = stack.pop()
        if isinstance(obj, str):
            items: Any = (obj,)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
            items = obj.keys()
        elif isinstance(obj, list):
            stack.extend(obj)
            continue
        else:
            continue
        for s in items:
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                raise bad_request(f"{what} holds a lone surrogate (not valid Unicode)") from None


def parse_int(value: Any, name: str) -> int:
    """A non-negative integer parameter (a JSON number or ASCII digits), at most
    `MAX_INT`; `400` otherwise (`"²"` is a digit to `str.isdigit`, not to us)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT:
        return value
    if isinstance(value, str) and 0 < len(value) <= 19 and value.isascii() and value.isdigit():
        number = int(value)
        if number <= MAX_INT:
            return number
    raise bad_request(f"Invalid value for {name}: expected a non-negative integer below 2^63")


# -- query time budget -----------------------------------------------------------------


class QueryTimeout(CouchError):
    """A query ran past its time budget (`--query-timeout`)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(400, "query_timeout",
                         f"The query did not finish within the server's query timeout of {seconds:g} s "
                         "(--query-timeout); narrow the selector or add an index.")


_local = threading.local()
shutting_down = threading.Event()
"""Set at shutdown: every running budget expires at its next check."""


class budget:
    """`with budget(seconds):` bounds query evaluation on this thread: long loops call
    `check_budget()`, which raises `QueryTimeout` once the time is up."""

    def __init__(self, seconds: float | None, reported: float | None = None) -> None:
        self.seconds = seconds
        self.reported = seconds if reported is None else reported
        """The budget named in the error (the option's value, when `seconds` is what is left)."""

    def __enter__(self) -> budget:
        self._saved = getattr(_local, "deadline", None), getattr(_local, "seconds", None)
        _local.deadline = None if not self.seconds else time.monotonic() + self.seconds
        _local.seconds = self.reported
        return self

    def __exit__(self, *exc: object) -> None:
        _local.deadline, _local.seconds = self._saved


def check_budget() -> None:
    """Raise `QueryTimeout` when this thread's budget is spent (or the server stops)."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise QueryTimeout(_local.seconds)
    if shutting_down.is_set():
        raise CouchError(503, "service_unavailable", "The server is shutting down.")


def expired() -> bool:
    """Whether this thread's budget is spent (for SQLite's progress handler)."""
    deadline = getattr(_local, "deadline", None)
    return (deadline is not None and time.monotonic() > deadline) or shutting_down.is_set()
