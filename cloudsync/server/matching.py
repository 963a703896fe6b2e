"""The server's use of the shared Mango matcher (`cloudsync.selector`): `$regex` only
through RE2 (linear-time matching, no catastrophic backtracking, patterns capped in
length), evaluation within the query time budget, and an invalid selector answered as
CouchDB does, `400 bad_request`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import SelectorError
from ..selector import Predicate
from ..selector import compile_selector as _compile_selector
from .errors import bad_request
from .limits import check_budget

__all__ = ["MAX_REGEX", "compile_selector"]

MAX_REGEX = 4096
"""Longest `$regex` pattern accepted (characters)."""

try:  # the server extra installs google-re2
    _re2: Any = importlib.import_module("re2")
    _RE2_OPTIONS = _re2.Options()
    _RE2_OPTIONS.log_errors = False
except ImportError:  # pragma: no cover
    _re2 = None


def _compile_regex(pattern: str) -> Any:
    if len(pattern) > MAX_REGEX:
        raise SelectorError(f"$regex longer than {MAX_REGEX} characters")
    if _re2 is None:  # pragma: no cover
        raise SelectorError("$regex needs the google-re2 package (pip install 'cloudsync[server]')")
    try:
        return _re2.compile(pattern, _RE2_OPTIONS)
    except (_re2.error, TypeError, ValueError) as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise SelectorError(f"Invalid $regex (RE2 syntax: no backreferences or lookaround): {reason}") from None


def compile_selector(selector: Any) -> Predicate:
    """A predicate `doc -> bool` for a Mango selector, evaluated within this thread's
    query budget.

    Raises:
        CouchError: 400 `bad_request` for an invalid selector.
    """
    try:
        return _compile_selector(selector, regex=_compile_regex, tick=check_budget)
    except SelectorError as exc:
        raise bad_request(str(exc)) from None
