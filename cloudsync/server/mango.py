"""Mango: selector matching, json indexes as SQLite expression indexes, ``_find`` planning.

A query runs as one SQL statement over ``docs`` that walks either the primary key (the
special ``_all_docs`` index) or a SQLite expression index on ``json_extract(body, ...)``
(one per distinct field list of the Mango indexes in design docs). Conditions on the
index's columns are pushed into SQL so the index bounds the scan; every row is then
checked against the full selector in Python with CouchDB semantics, so SQL only ever has
to return a superset.

Deviations from CouchDB, kept on purpose: strings compare by Unicode code point (not
ICU collation); on an indexed field, range bounds are applied by SQLite, whose type
order differs from CouchDB's for ``null``, booleans (0/1) and arrays/objects (their JSON
text), so such values may be missing from an indexed range query's results.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import math
import time
from collections.abc import Callable
from typing import Any

from .._json import dumps, loads
from .errors import CouchError, bad_request
from .limits import MAX_INT, check_budget

try:  # RE2 matches in time linear in the input: no catastrophic backtracking (the server extra)
    _re2: Any = importlib.import_module("re2")
    _RE2_OPTIONS = _re2.Options()
    _RE2_OPTIONS.log_errors = False
except ImportError:  # pragma: no cover - the server extra installs google-re2
    _re2 = None

__all__ = ["Index", "Query", "compile_selector", "collate", "field_expr", "indexes_from_ddoc", "run_find"]

_MISSING = object()
_TYPE_NAMES = {"null", "boolean", "number", "string", "array", "object"}
NO_INDEX_WARNING = "No matching index found, create an index to optimize query time."
DEFAULT_LIMIT = 25
#: Longest ``$regex`` pattern accepted (characters).
MAX_REGEX = 4096
#: ``$in`` lists longer than this are not pushed into SQL (SQLite's bound-parameter limit).
MAX_SQL_IN = 500
_SQL_INT_MIN = -(1 << 63)


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
    """CouchDB's JSON collation (strings by code point): -1, 0 or 1."""
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
    """``"a.b\\.c"`` -> ``("a", "b.c")`` (a backslash escapes a dot)."""
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
    """The value at ``path`` in ``doc``, or the ``_MISSING`` sentinel."""
    for key in path:
        if isinstance(doc, dict):
            doc = doc.get(key, _MISSING)
            if doc is _MISSING:
                return doc
        elif isinstance(doc, list) and key.isascii() and key.isdigit() and int(key) < len(doc):
            doc = doc[int(key)]
        else:
            return _MISSING
    return doc


def field_expr(field: str) -> str:
    """The SQL expression reading ``field`` from a stored body (shared by index and query)."""
    if field == "_id":
        return "id"
    path = "$" + "".join('."' + part + '"' for part in parse_field(field))
    return "json_extract(body, '" + path.replace("'", "''") + "')"


def _indexable(field: str) -> bool:
    return all('"' not in part and "\\" not in part for part in parse_field(field))


# -- selector compilation ------------------------------------------------------------

Pred = Callable[[Any], bool]


def compile_selector(selector: Any) -> Pred:
    """A predicate ``doc -> bool`` for a Mango selector; 400 for an invalid selector."""
    if not isinstance(selector, dict):
        raise bad_request("Selector must be a JSON object")
    return _compile(selector, ())


def _all_of(preds: list[Callable[[Any], bool]], doc: Any) -> bool:
    if len(preds) > 64:
        check_budget()
    return all(p(doc) for p in preds)


def _any_of(preds: list[Callable[[Any], bool]], doc: Any) -> bool:
    if len(preds) > 64:
        check_budget()
    return any(p(doc) for p in preds)


def _none_of(preds: list[Callable[[Any], bool]], doc: Any) -> bool:
    return not _any_of(preds, doc)


def _key(v: Any) -> tuple[Any, ...] | None:
    """A hashable key equal for values that collate equal (scalars only; ``None`` for
    arrays and objects). Booleans and numbers get different ranks, so ``True != 1``."""
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

    __slots__ = ("keys", "others", "plain")

    def __init__(self, values: list[Any]) -> None:
        self.keys: set[tuple[Any, ...]] = set()
        self.others: list[Any] = []
        for i, value in enumerate(values):
            if not i & 4095:
                check_budget()
            key = _key(value)
            if key is None:
                self.others.append(value)
            else:
                self.keys.add(key)
        #: The values themselves when all are numbers or strings: Python's own set
        #: operations then rule out a match at C speed (Python equality differs from
        #: collation only by ``True == 1``, so a hit is confirmed the slow way).
        self.plain: frozenset[Any] | None = None
        if not self.others and all(k[0] in (3, 4) for k in self.keys):
            self.plain = frozenset(k[1] for k in self.keys)

    def cannot_match(self, values: list[Any]) -> bool:
        """True when no element of ``values`` can collate equal to a wanted value."""
        if self.plain is None:
            return False
        try:
            return self.plain.isdisjoint(values)
        except TypeError:  # arrays or objects among the values
            return False

    def missing_any(self, values: list[Any]) -> bool:
        """True when some wanted value is certainly not among ``values``."""
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
                check_budget()
            if value in self:
                return True
        return False


def _any_elem(sub: Pred, values: list[Any]) -> bool:
    for i, value in enumerate(values):
        if not i & 1023:
            check_budget()
        if sub(value):
            return True
    return False


def _all_elems(sub: Pred, values: list[Any]) -> bool:
    for i, value in enumerate(values):
        if not i & 1023:
            check_budget()
        if not sub(value):
            return False
    return True


def _compile(sel: Any, path: tuple[str, ...]) -> Pred:
    if not isinstance(sel, dict):
        raise bad_request(f"Invalid selector: {dumps(sel).decode()}")
    preds: list[Pred] = []
    for key, arg in sel.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(arg, list):
                raise bad_request(f"{key} requires an array argument")
            if key == "$or" and len(arg) > 8:
                same = _or_of_equalities(arg, path)
                if same is not None:
                    preds.append(same)
                    continue
            subs = [_compile(s, path) for s in arg]
            combine = {"$and": _all_of, "$or": _any_of}.get(key, _none_of)
            preds.append(functools.partial(combine, subs))
        elif key == "$not":
            preds.append(functools.partial(_none_of, [_compile(arg, path)]))
        elif key.startswith("$"):
            if not path:
                raise bad_request(f"Invalid operator: {key}")
            preds.append(_field_pred(path, _operator(key, arg)))
        else:
            fpath = path + parse_field(key)
            if isinstance(arg, dict) and arg:
                preds.append(_compile(arg, fpath))
            else:
                preds.append(_field_pred(fpath, _operator("$eq", arg)))
    if len(preds) == 1:
        return preds[0]
    return lambda d: all(p(d) for p in preds)


def _or_of_equalities(branches: list[Any], path: tuple[str, ...]) -> Pred | None:
    """``{"$or": [{"f": 1}, {"f": 2}, ...]}`` as one hash lookup instead of a branch per
    value (a 5,000-branch ``$or`` is otherwise 5,000 calls per document), or ``None``."""
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


def _field_pred(path: tuple[str, ...], test: Callable[[Any], bool]) -> Pred:
    exists_false = getattr(test, "exists_false", False)

    def pred(doc: Any) -> bool:
        value = get_field(doc, path)
        if value is _MISSING:
            return exists_false
        return test(value)

    return pred


def _operator(op: str, arg: Any) -> Callable[[Any], bool]:
    """The test a field value must pass for ``{op: arg}`` (value known to exist)."""
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
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise bad_request(f"{op} requires an array argument")

        wanted = _ValueSet(arg)

        def within(v: Any) -> bool:
            return wanted.any_in(v) if isinstance(v, list) else v in wanted

        return within if op == "$in" else (lambda v: not within(v))
    if op == "$exists":
        if not isinstance(arg, bool):
            raise bad_request("$exists requires a boolean argument")

        def exists(v: Any) -> bool:
            return arg

        exists.exists_false = not arg  # type: ignore[attr-defined]
        return exists
    if op == "$type":
        if arg not in _TYPE_NAMES:
            raise bad_request(f"$type must be one of {sorted(_TYPE_NAMES)}")
        return lambda v: _type_name(v) == arg
    if op == "$regex":
        if not isinstance(arg, str):
            raise bad_request("$regex requires a string argument")
        if len(arg) > MAX_REGEX:
            raise bad_request(f"$regex longer than {MAX_REGEX} characters")
        if _re2 is None:  # pragma: no cover
            raise bad_request("$regex needs the google-re2 package (pip install 'cloudsync[server]')")
        try:
            rx = _re2.compile(arg, _RE2_OPTIONS)
        except (_re2.error, TypeError, ValueError) as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise bad_request(f"Invalid $regex (RE2 syntax: no backreferences or lookaround): {reason}") from None
        return lambda v: isinstance(v, str) and rx.search(v) is not None
    if op == "$beginsWith":
        if not isinstance(arg, str):
            raise bad_request("$beginsWith requires a string argument")
        return lambda v: isinstance(v, str) and v.startswith(arg)
    if op == "$size":
        if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
            raise bad_request("$size requires a non-negative integer argument")
        return lambda v: isinstance(v, list) and len(v) == arg
    if op == "$mod":
        if (not isinstance(arg, list) or len(arg) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in arg) or arg[0] == 0):
            raise bad_request("$mod requires [non-zero divisor, remainder] integers")
        d, r = arg
        return lambda v: isinstance(v, int) and not isinstance(v, bool) and int(math.fmod(v, d)) == r
    if op == "$all":
        if not isinstance(arg, list):
            raise bad_request("$all requires an array argument")

        wanted = _ValueSet(arg)

        def has_all(v: Any) -> bool:
            # One pass over the document's array, stopping once every wanted value is seen.
            if not isinstance(v, list) or not arg or wanted.missing_any(v):
                return False
            keys, found = wanted.keys, set()
            for i, x in enumerate(v):
                if not i & 4095:
                    check_budget()
                key = _key(x)
                if key in keys:
                    found.add(key)
                    if len(found) == len(keys) and not wanted.others:
                        return True
            if len(found) < len(keys):
                return False
            return all(any(collate(x, other) == 0 for x in v) for other in wanted.others)

        return has_all
    if op in ("$elemMatch", "$allMatch"):
        sub = _compile_elem(arg)
        if op == "$elemMatch":
            return lambda v: isinstance(v, list) and _any_elem(sub, v)
        return lambda v: isinstance(v, list) and len(v) > 0 and _all_elems(sub, v)
    if op == "$keyMapMatch":
        sub = _compile_elem(arg)
        return lambda v: isinstance(v, dict) and _any_elem(sub, list(v))
    if op == "$not":
        sub = _compile_elem(arg)
        return lambda v: not sub(v)
    if op in ("$and", "$or", "$nor"):
        if not isinstance(arg, list):
            raise bad_request(f"{op} requires an array argument")
        subs = [_compile_elem(s) for s in arg]
        if op == "$and":
            return lambda v: all(p(v) for p in subs)
        if op == "$or":
            return lambda v: any(p(v) for p in subs)
        return lambda v: not any(p(v) for p in subs)
    raise bad_request(f"Invalid operator: {op}")


def _compile_elem(arg: Any) -> Pred:
    """A predicate on one value (array element / map key) for ``$elemMatch`` and friends."""
    if not isinstance(arg, dict):
        raise bad_request("Operator requires a selector object argument")
    tests: list[Pred] = []
    fields = {}
    for key, value in arg.items():
        if key.startswith("$"):
            if key in ("$and", "$or", "$nor", "$not") and not all(
                isinstance(s, dict) and all(k.startswith("$") for k in s)
                for s in (value if isinstance(value, list) else [value])
            ):
                fields[key] = value
            else:
                tests.append(_operator(key, value))
        else:
            fields[key] = value
    if fields:
        tests.append(_compile(fields, ()))
    return lambda v: all(t(v) for t in tests)


def _type_name(v: Any) -> str:
    return ("null", "boolean", "boolean", "number", "string", "array", "object")[_rank(v)]


# -- indexes -------------------------------------------------------------------------


class Index:
    """A Mango json index: a view of a ``language: query`` design doc."""

    def __init__(self, ddoc: str, name: str, fields: list[tuple[str, str]],
                 partial: dict[str, Any] | None) -> None:
        self.ddoc = ddoc
        self.name = name
        self.fields = fields
        self.partial = partial
        self.partial_pred = compile_selector(partial) if partial else None
        self.columns = [f for f, _ in fields]
        key = dumps(self.columns)
        self.sql_name = "mango_" + hashlib.sha1(key).hexdigest()[:16]

    @property
    def direction(self) -> str:
        return self.fields[0][1]

    def create_sql(self) -> str:
        """The ``CREATE INDEX`` statement (live, non-design rows only, like a Mango index)."""
        exprs = ", ".join(field_expr(f) for f in self.columns)
        return f'CREATE INDEX IF NOT EXISTS "{self.sql_name}" ON docs ({exprs}, id) WHERE deleted = 0 AND design = 0'

    def as_json(self) -> dict[str, Any]:
        definition: dict[str, Any] = {"fields": [{f: d} for f, d in self.fields]}
        if self.partial:
            definition["partial_filter_selector"] = self.partial
        return {"ddoc": self.ddoc, "name": self.name, "type": "json", "partitioned": False, "def": definition}


def parse_index_fields(fields: Any) -> list[tuple[str, str]]:
    """``["a", {"b": "desc"}]`` -> ``[("a", "asc"), ("b", "desc")]``; 400 when invalid."""
    if not isinstance(fields, list) or not fields:
        raise bad_request("Index fields must be a non-empty array")
    out = []
    for item in fields:
        if isinstance(item, str):
            out.append((item, "asc"))
        elif isinstance(item, dict) and len(item) == 1:
            (name, direction), = item.items()
            if direction not in ("asc", "desc") or not isinstance(name, str):
                raise bad_request(f"Invalid index field: {dumps(item).decode()}")
            out.append((name, direction))
        else:
            raise bad_request(f"Invalid index field: {dumps(item).decode()}")
    if len({d for _, d in out}) > 1:
        raise bad_request("Sort directions of an index must all be the same")
    if not all(_indexable(f) and f for f, _ in out):
        raise bad_request("Index field names must not contain '\"' or backslashes")
    return out


def indexes_from_ddoc(doc: dict[str, Any]) -> list[Index]:
    """The json indexes a design document defines (CouchDB's ``language: query`` shape)."""
    if doc.get("language") != "query" or not isinstance(doc.get("views"), dict):
        return []
    found = []
    for name, view in doc["views"].items():
        try:
            definition = view["options"]["def"]
            fields = parse_index_fields(definition["fields"])
            partial = definition.get("partial_filter_selector") or None
            found.append(Index(doc["_id"], name, fields, partial))
        except (KeyError, TypeError, CouchError):
            continue  # not a json index we can serve; ignore like an unknown view type
    return found


def index_ddoc_view(fields: list[tuple[str, str]], partial: dict[str, Any] | None) -> dict[str, Any]:
    """The design-doc view entry CouchDB stores for a json index."""
    definition: dict[str, Any] = {"fields": [{f: d} for f, d in fields]}
    map_fields: dict[str, Any] = {"fields": dict(fields)}
    if partial:
        definition["partial_filter_selector"] = partial
        map_fields["partial_filter_selector"] = partial
    return {"map": map_fields, "reduce": "_count", "options": {"def": definition}}


# -- planning ------------------------------------------------------------------------

ALL_DOCS = {"ddoc": None, "name": "_all_docs", "type": "special", "def": {"fields": [{"_id": "asc"}]}}


def _conditions(selector: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """Top-level AND conditions per dotted field (the ones an index may serve)."""
    out: dict[str, list[tuple[str, Any]]] = {}

    def walk(sel: dict[str, Any], prefix: str) -> None:
        for key, arg in sel.items():
            if key == "$and" and isinstance(arg, list):
                for sub in arg:
                    if isinstance(sub, dict):
                        walk(sub, prefix)
            elif key.startswith("$"):
                if prefix:
                    out.setdefault(prefix, []).append((key, arg))
            else:
                name = f"{prefix}.{key}" if prefix else key
                if isinstance(arg, dict) and arg:
                    walk(arg, name)
                else:
                    out.setdefault(name, []).append(("$eq", arg))

    walk(selector, "")
    return out


def _implies_exists(conds: list[tuple[str, Any]]) -> bool:
    return any(op not in ("$exists", "$not", "$or", "$nor", "$and") or (op == "$exists" and arg is True)
               for op, arg in conds)


def _sql_scalar(v: Any) -> bool:
    # Integers outside SQLite's signed 64 bits cannot be bound: filtered in Python only.
    if isinstance(v, int) and not isinstance(v, bool):
        return _SQL_INT_MIN <= v <= MAX_INT
    return isinstance(v, (str, float))


def _pushdown(expr: str, conds: list[tuple[str, Any]], args: list[Any]) -> list[str]:
    """SQL terms selecting a superset of the rows ``conds`` match on ``expr``."""
    terms = []
    for op, arg in conds:
        if op == "$eq" and arg is None:
            terms.append(f"{expr} IS NULL")
        elif op == "$eq" and (_sql_scalar(arg) or isinstance(arg, bool)):
            terms.append(f"{expr} = ?")
            args.append(int(arg) if isinstance(arg, bool) else arg)
        elif op in ("$gt", "$gte") and arg is None:
            terms.append(f"{expr} IS NOT NULL")
        elif op in ("$gt", "$gte", "$lt", "$lte") and _sql_scalar(arg):
            terms.append(f"{expr} {dict(gt='>', gte='>=', lt='<', lte='<=')[op[1:]]} ?")
            args.append(arg)
        elif op == "$in" and isinstance(arg, list) and 0 < len(arg) <= MAX_SQL_IN and all(_sql_scalar(a) or isinstance(a, bool) for a in arg):
            terms.append(f"{expr} IN ({', '.join('?' * len(arg))})")
            args.extend(int(a) if isinstance(a, bool) else a for a in arg)
    return terms


def _parse_sort(sort: Any) -> list[tuple[str, str]]:
    if sort is None:
        return []
    if not isinstance(sort, list):
        raise bad_request("sort must be an array")
    out = []
    for item in sort:
        if isinstance(item, str):
            out.append((item, "asc"))
        elif isinstance(item, dict) and len(item) == 1:
            (name, direction), = item.items()
            if direction not in ("asc", "desc"):
                raise bad_request(f"Invalid sort direction: {direction}")
            out.append((name, direction))
        else:
            raise bad_request(f"Invalid sort field: {dumps(item).decode()}")
    if len({d for _, d in out}) > 1:
        raise CouchError(400, "unsupported_mixed_sort", "Sorts currently only support a single direction for all fields.")
    return out


class Query:
    """A parsed, validated ``_find`` request and its plan."""

    def __init__(self, body: Any, indexes: list[Index]) -> None:
        if not isinstance(body, dict):
            raise bad_request("Request body must be a JSON object")
        selector = body.get("selector")
        if not isinstance(selector, dict):
            raise bad_request("selector must be a JSON object")
        self.selector: dict[str, Any] = selector
        self.match = compile_selector(self.selector)
        self.limit = _nonneg(body.get("limit", DEFAULT_LIMIT), "limit")
        self.skip = _nonneg(body.get("skip", 0), "skip")
        self.fields = body.get("fields")
        if self.fields is not None and (
            not isinstance(self.fields, list) or not all(isinstance(f, str) for f in self.fields)
        ):
            raise bad_request("fields must be an array of strings")
        self.sort = _parse_sort(body.get("sort"))
        self.bookmark = body.get("bookmark")
        self.execution_stats = body.get("execution_stats") is True
        self.warnings: list[str] = []
        self.index = self._choose(indexes, body.get("use_index"))
        self._build_sql()

    def _choose(self, indexes: list[Index], use_index: Any) -> Index | None:
        conds = _conditions(self.selector)
        covered = {f for f, c in conds.items() if _implies_exists(c)}
        sort_fields = [f for f, _ in self.sort]

        def usable(ix: Index) -> bool:
            if not set(ix.columns) <= covered:
                return False
            if sort_fields:
                return ix.columns[: len(sort_fields)] == sort_fields
            return True

        candidates = [ix for ix in indexes if usable(ix)]
        if use_index:
            wanted = [use_index] if isinstance(use_index, str) else use_index
            if not isinstance(wanted, list) or not 1 <= len(wanted) <= 2:
                raise bad_request("use_index must be a string or [ddoc, name]")
            ddoc = wanted[0] if str(wanted[0]).startswith("_design/") else f"_design/{wanted[0]}"
            chosen = [ix for ix in candidates if ix.ddoc == ddoc and (len(wanted) == 1 or ix.name == wanted[1])]
            if chosen:
                return chosen[0]
            self.warnings.append(f"{', '.join(map(str, wanted))} was not used because it does not "
                                 "contain a valid index for this query.")
        if candidates:
            # The most specific index (most columns), then the first by ddoc/name.
            return sorted(candidates, key=lambda ix: (-len(ix.columns), ix.ddoc, ix.name))[0]
        if sort_fields and sort_fields != ["_id"]:
            raise CouchError(400, "no_usable_index", "No index exists for this sort, try indexing by the sort fields.")
        self.warnings.insert(0, NO_INDEX_WARNING)
        return None

    def _build_sql(self) -> None:
        conds = _conditions(self.selector)
        args: list[Any] = []
        where = ["deleted = 0", "design = 0"]
        self.descending = bool(self.sort) and self.sort[0][1] == "desc"
        exprs = ["id"] if self.index is None else [field_expr(f) for f in self.index.columns] + ["id"]
        self.key_exprs = exprs
        constant = set()
        for field, fconds in conds.items():
            if field == "_id" or (self.index is not None and field in self.index.columns):
                terms = _pushdown(field_expr(field), fconds, args)
                where.extend(terms)
                if any(t.endswith((" = ?", " IS NULL")) for t in terms):
                    constant.add(field_expr(field))
        if self.bookmark not in (None, "", "nil"):
            where.append(self._after(self._decode_bookmark(), args))
        # Leading columns pinned by equality are left out of ORDER BY: the order is the
        # same, and SQLite only sees that the index provides it without them.
        order_exprs = list(exprs)
        while len(order_exprs) > 1 and order_exprs[0] in constant:
            order_exprs.pop(0)
        order = " DESC" if self.descending else ""
        self.sql = (
            f"SELECT {', '.join(exprs)}, CAST(body AS BLOB) FROM docs WHERE {' AND '.join(where)} "
            f"ORDER BY {', '.join(e + order for e in order_exprs)}"
        )
        self.args = args

    def _decode_bookmark(self) -> list[Any]:
        try:
            raw = str(self.bookmark)
            key = loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            name = self.index.name if self.index else "_all_docs"
            if (isinstance(key, list) and len(key) == 2 and key[0] == name and isinstance(key[1], list)
                    and len(key[1]) == len(self.key_exprs)
                    and all(v is None or _sql_scalar(v) or isinstance(v, bool) for v in key[1])):
                return key[1]
        except Exception:
            pass
        raise bad_request("Invalid bookmark value")

    def _after(self, key: list[Any], args: list[Any]) -> str:
        """SQL for "sorts after ``key``" in this query's order (NULLs sort first ascending)."""

        def after(i: int) -> str:
            expr, v = self.key_exprs[i], key[i]
            last = i == len(key) - 1
            if not self.descending:
                if v is None:
                    rest = "" if last else f" OR ({expr} IS NULL AND {after(i + 1)})"
                    return f"({expr} IS NOT NULL{rest})"
                args.append(v)
                if last:
                    return f"{expr} > ?"
                args.append(v)
                return f"({expr} > ? OR ({expr} = ? AND {after(i + 1)}))"
            if v is None:
                return "0" if last else f"({expr} IS NULL AND {after(i + 1)})"
            args.append(v)
            if last:
                return f"{expr} < ?"
            args.append(v)
            return f"({expr} < ? OR {expr} IS NULL OR ({expr} = ? AND {after(i + 1)}))"

        term = after(0)
        if not self.descending and key[0] is not None:
            # A redundant lower bound lets SQLite start the index scan at the bookmark.
            args.append(key[0])
            term = f"{self.key_exprs[0]} >= ? AND {term}"
        return term

    def explain(self, db_name: str, plan: list[str]) -> dict[str, Any]:
        """The ``_explain`` answer."""
        return {
            "dbname": db_name,
            "index": self.index.as_json() if self.index else ALL_DOCS,
            "partitioned": False,
            "selector": self.selector,
            "opts": {"use_index": [], "bookmark": self.bookmark or "nil", "limit": self.limit,
                     "skip": self.skip, "sort": dict(self.sort), "fields": self.fields or "all_fields"},
            "limit": self.limit,
            "skip": self.skip,
            "fields": self.fields or "all_fields",
            "sql": self.sql,
            "query_plan": plan,
        }


def _nonneg(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise bad_request(f"{name} must be a non-negative integer")
    return value


def project(doc: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Keep only ``fields`` (dotted paths) of ``doc``."""
    out: dict[str, Any] = {}
    for field in fields:
        path = parse_field(field)
        value = get_field(doc, path)
        if value is _MISSING:
            continue
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return out


def run_find(conn: Any, query: Query) -> dict[str, Any]:
    """Execute ``query`` on a read connection: the ``_find`` answer."""
    started = time.perf_counter()
    cursor = conn.execute(query.sql, query.args)
    docs: list[Any] = []
    examined = 0
    to_skip = query.skip
    last_key = None
    partial = query.index.partial_pred if query.index else None
    n = len(query.key_exprs)
    while len(docs) < query.limit:
        batch = cursor.fetchmany(256)
        if not batch:
            break
        check_budget()
        for row in batch:
            examined += 1
            doc = loads(row[n])
            if (partial is not None and not partial(doc)) or not query.match(doc):
                continue
            if to_skip:
                to_skip -= 1
                continue
            docs.append(project(doc, query.fields) if query.fields else doc)
            last_key = list(row[:n])
            if len(docs) >= query.limit:
                break
    cursor.close()
    if last_key is not None:
        name = query.index.name if query.index else "_all_docs"
        bookmark = base64.urlsafe_b64encode(dumps([name, last_key])).rstrip(b"=").decode()
    else:
        bookmark = query.bookmark or "nil"
    result: dict[str, Any] = {"docs": docs, "bookmark": bookmark}
    if query.warnings:
        result["warning"] = "\n".join(query.warnings)
    if query.execution_stats:
        result["execution_stats"] = {
            "total_keys_examined": examined if query.index else 0,
            "total_docs_examined": examined,
            "total_quorum_docs_examined": 0,
            "results_returned": len(docs),
            "execution_time_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    return result
