"""Mango selectors evaluated in Python, with CouchDB's semantics: one matcher for the
client and the embedded server.

- Collation: `null < false < true < numbers < strings < arrays < objects`; strings
  compare by Unicode code point (CouchDB uses ICU collation: a deliberate deviation).
- Field names: `"a.b"` is the path `a` -> `b`; `"a\\.b"` is the one field `a.b`;
  a path step that is a number also indexes into an array.
- Operators: ``$and $or $nor $not $eq $ne $gt $gte $lt $lte $in $nin $exists $type
  $regex $beginsWith $size $mod $all $elemMatch $allMatch $keyMapMatch``.

This module needs only the standard library (and `google-re2` for `$regex` when it is
installed, else Python's `re`). The server passes in its own regular-expression compiler
and its query time budget (see `compile_selector`).
"""

from __future__ import annotations

import functools
import importlib
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from ._json import dumps
from .errors import SelectorError

__all__ = ["MISSING", "Predicate", "collate", "collation_key", "compile_selector", "get_field", "parse_field", "project", "sort_key"]

MISSING: Any = object()
"""What `get_field` returns for a path a document does not have."""
TYPE_NAMES = frozenset({"null", "boolean", "number", "string", "array", "object"})

Predicate = Callable[[Any], bool]
RegexCompiler = Callable[[str], Any]
"""Compiles a `$regex` pattern to an object with `search(str)`; raises `SelectorError`."""


# -- collation and field access ------------------------------------------------------


def _rank(v: Any) -> int:
    if v is None:
        return 0
    if v is False:
        return 1
    if v is True:
        return 2
    if isinstance(v, (int, float)):
        return 3
    if isinstance(v, str):
        return 4
    if isinstance(v, list):
        return 5
    return 6


def collate(a: Any, b: Any) -> int:
    """CouchDB's JSON collation of `a` and `b` (strings by code point).

    Returns:
        -1, 0 or 1.
    """
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra in (3, 4):
        return (a > b) - (a < b)
    if ra == 5:
        for x, y in zip(a, b, strict=False):
            c = collate(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra == 6:
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=False):
            c = collate(ka, kb) or collate(va, vb)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    return 0


def parse_field(name: str) -> tuple[str, ...]:
    """A field name as a path: `"a.b\\.c"` -> `("a", "b.c")` (a backslash escapes a dot)."""
    parts, cur, i = [], [], 0
    while i < len(name):
        ch = name[i]
        if ch == "\\" and i + 1 < len(name) and name[i + 1] == ".":
            cur.append(".")
            i += 2
            continue
        if ch == ".":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return tuple(parts)


def get_field(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` (see `parse_field`) in `doc`, or `MISSING`."""
    for key in path:
        if isinstance(doc, dict):
            doc = doc.get(key, MISSING)
            if doc is MISSING:
                return doc
        elif isinstance(doc, list) and key.isascii() and key.isdigit() and int(key) < len(doc):
            doc = doc[int(key)]
        else:
            return MISSING
    return doc


def project(doc: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Only the `fields` (dotted names) of `doc`, nested as in `doc`; missing ones left out."""
    out: dict[str, Any] = {}
    for field in fields:
        path = parse_field(field)
        value = get_field(doc, path)
        if value is MISSING:
            continue
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return out


_CollateKey = functools.cmp_to_key(collate)


def collation_key(value: Any) -> tuple[Any, ...]:
    """A key that Python compares as `collate` orders values (natively for scalars, the
    common case); a missing field (`MISSING`) sorts before every value, null included.

    The key's first element is the value's type rank: 0 null, 1 false, 2 true,
    3 numbers, 4 strings, 5 arrays, 6 objects (-1 missing).
    """
    if value is MISSING:
        return (-1,)
    rank = _rank(value)
    if rank == 3 or rank == 4:
        return (rank, value)
    if rank >= 5:
        return (rank, _CollateKey(value))
    return (rank,)


class _Descending:
    """A key compared the other way round (a field sorted `"desc"`)."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.key == other.key

    def __lt__(self, other: _Descending) -> bool:
        return other.key < self.key

    def __gt__(self, other: _Descending) -> bool:
        return self.key < other.key

    __hash__ = None  # type: ignore[assignment]


def sort_key(sort: list[tuple[str, str]]) -> Callable[[Any], Any]:
    """A `key=` function for `sorted` (or `bisect`) ordering documents as a Mango `sort` does.

    Keys are tuples Python compares natively where the values are scalars, so sorting or
    bisecting many documents costs no Python-level comparison function.

    Args:
        sort: `(field, "asc" | "desc")` pairs, the first the most significant; each
            field may have its own direction. Values collate as in `collate`; a missing
            field sorts first.

    Raises:
        SelectorError: a direction other than `"asc"` or `"desc"`.
    """
    paths = []
    for field, direction in sort:
        if direction not in ("asc", "desc"):
            raise SelectorError(f"Invalid sort direction: {direction}")
        paths.append((parse_field(field), direction == "desc"))

    def key(doc: Any) -> tuple[Any, ...]:
        return tuple(_Descending(collation_key(get_field(doc, path))) if desc
                     else collation_key(get_field(doc, path)) for path, desc in paths)

    return key


# -- compilation ---------------------------------------------------------------------


class _Env(NamedTuple):
    """What compiled predicates call out to: the regex compiler and the time budget."""

    regex: RegexCompiler
    tick: Callable[[], None]


def _no_budget() -> None:
    return None


def _default_regex() -> RegexCompiler:
    """RE2 when installed (linear-time matching), else Python's `re`."""
    try:
        re2: Any = importlib.import_module("re2")
    except ImportError:
        def compile_re(pattern: str) -> Any:
            try:
                return re.compile(pattern)
            except re.error as exc:
                raise SelectorError(f"Invalid $regex: {exc}") from None
        return compile_re
    options = re2.Options()
    options.log_errors = False

    def compile_re2(pattern: str) -> Any:
        try:
            return re2.compile(pattern, options)
        except (re2.error, TypeError, ValueError) as exc:
            raise SelectorError(f"Invalid $regex: {exc}") from None

    return compile_re2


def compile_selector(selector: Any, *, regex: RegexCompiler | None = None,
                     tick: Callable[[], None] | None = None) -> Predicate:
    """A predicate `doc -> bool` for a Mango selector.

    Args:
        selector: the selector (a JSON object).
        regex: compiles `$regex` patterns (default: RE2 if installed, else `re`); it
            raises `SelectorError` for a pattern it refuses.
        tick: called now and then while a large `$in`/`$or`/array is evaluated and
            before each `$regex` is compiled; it may raise to stop the work (the
            server's query time budget).

    Raises:
        SelectorError: the selector is invalid.
    """
    if not isinstance(selector, dict):
        raise SelectorError("Selector must be a JSON object")
    env = _Env(regex or _default_regex(), tick or _no_budget)
    return _compile(env, selector, ())


def _all_of(tick: Callable[[], None], preds: list[Predicate], doc: Any) -> bool:
    if len(preds) > 64:
        tick()
    return all(p(doc) for p in preds)


def _any_of(tick: Callable[[], None], preds: list[Predicate], doc: Any) -> bool:
    if len(preds) > 64:
        tick()
    return any(p(doc) for p in preds)


def _none_of(tick: Callable[[], None], preds: list[Predicate], doc: Any) -> bool:
    return not _any_of(tick, preds, doc)


def _key(v: Any) -> tuple[Any, ...] | None:
    """A hashable key equal for values that collate equal (scalars only; `None` for
    arrays and objects). Booleans and numbers get different ranks, so `True != 1`."""
    if v is None:
        return (0,)
    if v is False:
        return (1,)
    if v is True:
        return (2,)
    t = type(v)
    if t is int or t is float:
        return (3, v)
    if t is str:
        return (4, v)
    return None


class _ValueSet:
    """Membership by CouchDB collation: a hash set for scalars, a list for the rest."""

    __slots__ = ("keys", "others", "plain", "tick")

    def __init__(self, values: list[Any], tick: Callable[[], None]) -> None:
        self.tick = tick
        self.keys: set[tuple[Any, ...]] = set()
        self.others: list[Any] = []
        for i, value in enumerate(values):
            if not i & 4095:
                tick()
            key = _key(value)
            if key is None:
                self.others.append(value)
            else:
                self.keys.add(key)
        self.plain: frozenset[Any] | None = None
        """The values themselves when all are numbers or strings: Python's own set
        operations then rule out a match at C speed (Python equality differs from
        collation only by `True == 1`, so a hit is confirmed the slow way)."""
        if not self.others and all(k[0] in (3, 4) for k in self.keys):
            self.plain = frozenset(k[1] for k in self.keys)

    def cannot_match(self, values: list[Any]) -> bool:
        """True when no element of `values` can collate equal to a wanted value."""
        if self.plain is None:
            return False
        try:
            return self.plain.isdisjoint(values)
        except TypeError:  # arrays or objects among the values
            return False

    def missing_any(self, values: list[Any]) -> bool:
        """True when some wanted value is certainly not among `values`."""
        if self.plain is None:
            return False
        try:
            return len(self.plain.intersection(values)) < len(self.plain)
        except TypeError:
            return False

    def __contains__(self, value: Any) -> bool:
        key = _key(value)
        if key is not None:
            return key in self.keys
        return any(collate(value, other) == 0 for other in self.others)

    def any_in(self, values: list[Any]) -> bool:
        if self.cannot_match(values):
            return False
        for i, value in enumerate(values):
            if not i & 4095:
                self.tick()
            if value in self:
                return True
        return False


def _any_elem(tick: Callable[[], None], sub: Predicate, values: list[Any]) -> bool:
    for i, value in enumerate(values):
        if not i & 1023:
            tick()
        if sub(value):
            return True
    return False


def _all_elems(tick: Callable[[], None], sub: Predicate, values: list[Any]) -> bool:
    for i, value in enumerate(values):
        if not i & 1023:
            tick()
        if not sub(value):
            return False
    return True


def _compile(env: _Env, sel: Any, path: tuple[str, ...]) -> Predicate:
    if not isinstance(sel, dict):
        raise SelectorError(f"Invalid selector: {dumps(sel).decode()}")
    preds: list[Predicate] = []
    for key, arg in sel.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(arg, list):
                raise SelectorError(f"{key} requires an array argument")
            if key == "$or" and len(arg) > 8:
                same = _or_of_equalities(arg, path)
                if same is not None:
                    preds.append(same)
                    continue
            subs = [_compile(env, s, path) for s in arg]
            combine = {"$and": _all_of, "$or": _any_of}.get(key, _none_of)
            preds.append(functools.partial(combine, env.tick, subs))
        elif key == "$not":
            preds.append(functools.partial(_none_of, env.tick, [_compile(env, arg, path)]))
        elif key.startswith("$"):
            if not path:
                raise SelectorError(f"Invalid operator: {key}")
            preds.append(_field_pred(path, _operator(env, key, arg)))
        else:
            fpath = path + parse_field(key)
            if isinstance(arg, dict) and arg:
                preds.append(_compile(env, arg, fpath))
            else:
                preds.append(_field_pred(fpath, _operator(env, "$eq", arg)))
    if len(preds) == 1:
        return preds[0]
    return lambda d: all(p(d) for p in preds)


def _or_of_equalities(branches: list[Any], path: tuple[str, ...]) -> Predicate | None:
    """`{"$or": [{"f": 1}, {"f": 2}, ...]}` as one hash lookup instead of a branch per
    value (a 5,000-branch `$or` is otherwise 5,000 calls per document), or `None`."""
    field = None
    keys = set()
    for branch in branches:
        if not isinstance(branch, dict) or len(branch) != 1:
            return None
        (name, value), = branch.items()
        if isinstance(value, dict) and len(value) == 1 and "$eq" in value:
            value = value["$eq"]
        key = _key(value)
        if name.startswith("$") or key is None or (field is not None and name != field):
            return None
        field = name
        keys.add(key)
    if field is None:
        return None
    # $eq: an array or object value never equals a scalar, and _key() of one is None.
    return _field_pred(path + parse_field(field), lambda v: _key(v) in keys)


def _field_pred(path: tuple[str, ...], test: Callable[[Any], bool]) -> Predicate:
    exists_false = getattr(test, "exists_false", False)

    def pred(doc: Any) -> bool:
        value = get_field(doc, path)
        if value is MISSING:
            return exists_false
        return test(value)

    return pred


def _comparison(op: str, arg: Any) -> Callable[[Any], bool] | None:
    if op == "$eq":
        return lambda v: collate(v, arg) == 0
    if op == "$ne":
        return lambda v: collate(v, arg) != 0
    if op == "$gt":
        return lambda v: collate(v, arg) > 0
    if op == "$gte":
        return lambda v: collate(v, arg) >= 0
    if op == "$lt":
        return lambda v: collate(v, arg) < 0
    if op == "$lte":
        return lambda v: collate(v, arg) <= 0
    return None


def _operator(env: _Env, op: str, arg: Any) -> Callable[[Any], bool]:
    """The test a field value must pass for `{op: arg}` (value known to exist)."""
    compare = _comparison(op, arg)
    if compare is not None:
        return compare
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise SelectorError(f"{op} requires an array argument")

        wanted = _ValueSet(arg, env.tick)

        def within(v: Any) -> bool:
            return wanted.any_in(v) if isinstance(v, list) else v in wanted

        return within if op == "$in" else (lambda v: not within(v))
    if op == "$exists":
        if not isinstance(arg, bool):
            raise SelectorError("$exists requires a boolean argument")

        def exists(v: Any) -> bool:
            return arg

        exists.exists_false = not arg  # type: ignore[attr-defined]
        return exists
    if op == "$type":
        if arg not in TYPE_NAMES:
            raise SelectorError(f"$type must be one of {sorted(TYPE_NAMES)}")
        return lambda v: _type_name(v) == arg
    if op == "$regex":
        if not isinstance(arg, str):
            raise SelectorError("$regex requires a string argument")
        env.tick()  # compiling thousands of patterns takes long enough to need the budget
        rx = env.regex(arg)
        return lambda v: isinstance(v, str) and rx.search(v) is not None
    if op == "$beginsWith":
        if not isinstance(arg, str):
            raise SelectorError("$beginsWith requires a string argument")
        return lambda v: isinstance(v, str) and v.startswith(arg)
    if op == "$size":
        if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
            raise SelectorError("$size requires a non-negative integer argument")
        return lambda v: isinstance(v, list) and len(v) == arg
    if op == "$mod":
        if (not isinstance(arg, list) or len(arg) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in arg) or arg[0] == 0):
            raise SelectorError("$mod requires [non-zero divisor, remainder] integers")
        d, r = arg
        return lambda v: isinstance(v, int) and not isinstance(v, bool) and int(math.fmod(v, d)) == r
    if op == "$all":
        return _has_all(env, arg)
    return _nested_operator(env, op, arg)


def _has_all(env: _Env, arg: Any) -> Callable[[Any], bool]:
    if not isinstance(arg, list):
        raise SelectorError("$all requires an array argument")
    wanted = _ValueSet(arg, env.tick)
    tick = env.tick

    def has_all(v: Any) -> bool:
        # One pass over the document's array, stopping once every wanted value is seen.
        if not isinstance(v, list) or not arg or wanted.missing_any(v):
            return False
        keys, found = wanted.keys, set()
        for i, x in enumerate(v):
            if not i & 4095:
                tick()
            key = _key(x)
            if key in keys:
                found.add(key)
                if len(found) == len(keys) and not wanted.others:
                    return True
        if len(found) < len(keys):
            return False
        return all(any(collate(x, other) == 0 for x in v) for other in wanted.others)

    return has_all


def _nested_operator(env: _Env, op: str, arg: Any) -> Callable[[Any], bool]:
    """Operators whose argument is itself a selector on the value."""
    tick = env.tick
    if op in ("$elemMatch", "$allMatch"):
        sub = _compile_elem(env, arg)
        if op == "$elemMatch":
            return lambda v: isinstance(v, list) and _any_elem(tick, sub, v)
        return lambda v: isinstance(v, list) and len(v) > 0 and _all_elems(tick, sub, v)
    if op == "$keyMapMatch":
        sub = _compile_elem(env, arg)
        return lambda v: isinstance(v, dict) and _any_elem(tick, sub, list(v))
    if op == "$not":
        sub = _compile_elem(env, arg)
        return lambda v: not sub(v)
    if op in ("$and", "$or", "$nor"):
        if not isinstance(arg, list):
            raise SelectorError(f"{op} requires an array argument")
        subs = [_compile_elem(env, s) for s in arg]
        if op == "$and":
            return lambda v: all(p(v) for p in subs)
        if op == "$or":
            return lambda v: any(p(v) for p in subs)
        return lambda v: not any(p(v) for p in subs)
    raise SelectorError(f"Invalid operator: {op}")


def _compile_elem(env: _Env, arg: Any) -> Predicate:
    """A predicate on one value (array element / map key) for `$elemMatch` and friends."""
    if not isinstance(arg, dict):
        raise SelectorError("Operator requires a selector object argument")
    tests: list[Predicate] = []
    fields = {}
    for key, value in arg.items():
        if key.startswith("$"):
            if key in ("$and", "$or", "$nor", "$not") and not all(
                isinstance(s, dict) and all(k.startswith("$") for k in s)
                for s in (value if isinstance(value, list) else [value])
            ):
                fields[key] = value
            else:
                tests.append(_operator(env, key, value))
        else:
            fields[key] = value
    if fields:
        tests.append(_compile(env, fields, ()))
    return lambda v: all(t(v) for t in tests)


def _type_name(v: Any) -> str:
    return ("null", "boolean", "boolean", "number", "string", "array", "object")[_rank(v)]
