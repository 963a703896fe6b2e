"""Mango on SQLite: json indexes as expression indexes, and a query plan turned into a
few SQL statements over `docs`.

SQLite orders values by its own type order (NULL < numbers < text), in which JSON
booleans are the integers 0 and 1 and arrays and objects are their JSON text. So an
index keeps two expressions per field: the value's CouchDB type rank (null 0, false 1,
true 2, numbers 3, strings 4, arrays 5, objects 6; missing: NULL) and the value as
`json_extract` reads it. `ORDER BY rank, value` is CouchDB's collation for scalars
(strings by code point, as `cloudsync.selector.collate`). Arrays and objects only come
out grouped by rank: the caller re-sorts such runs (see `cloudsync.server.collation`).

A query's rows are read as consecutive segments of the first index column the selector
does not pin to one value: one statement per rank that a range bounds by value, one for
a stretch of ranks it does not, each a seek in index order. SQL only has to return a
superset: the caller checks every row against the full selector and the bookmark.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Generator
from typing import Any, NamedTuple, Protocol

from ..._json import dumps, loads
from ...selector import collation_key, parse_field
from ..indexes import Index, indexes_from_ddoc
from ..limits import MAX_INT
from ..partitions import PARTITION_SQL, id_range

__all__ = ["COMPOSITE", "Column", "FindPlan", "bindable", "columns", "explain", "find_sql", "index_ddl",
           "index_name", "rank", "rank_positions", "rows", "sync_indexes"]

MAX_SQL_IN = 500
"""`$in` lists longer than this are not pushed into SQL (SQLite's bound-parameter limit)."""
_SQL_INT_MIN = -(1 << 63)
_ALL_RANKS = frozenset(range(7))
COMPOSITE = 5
"""Ranks from this one on (arrays, objects) are indexed as JSON text, which SQL orders
differently from CouchDB: rows of such values come out grouped, not sorted."""
_JSON_TYPE_RANKS = (("null", 0), ("false", 1), ("true", 2), ("integer", 3), ("real", 3), ("text", 4),
                    ("array", 5), ("object", 6))
_FIXED_VALUE = {0: "IS NULL", 1: "= 0", 2: "= 1"}
"""How `json_extract` reads the one value of each of the ranks null, false and true."""


class FindPlan(Protocol):
    """What `find_sql` reads of a planned query (see `cloudsync.server.query.Query`)."""

    index: Index | None
    conditions: dict[str, list[tuple[str, Any]]]
    """Top-level AND conditions per dotted field: `[(operator, argument), ...]`."""
    descending: bool
    after_key: list[Any] | None
    """The sort key the last page ended at (one JSON value per index column, then the id)."""
    partition: str | None
    """Only this partition's documents (its index, if any, is a partitioned one)."""


def rank(value: Any) -> int:
    """`value`'s CouchDB type rank (the order of JSON types in collation)."""
    return collation_key(value)[0]


def bindable(v: Any) -> bool:
    """Whether SQLite can bind and compare `v` as the JSON value it is (integers outside
    signed 64 bits cannot be bound: those are filtered in Python only)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return _SQL_INT_MIN <= v <= MAX_INT
    return isinstance(v, (str, float))


class Column(NamedTuple):
    """One key column of a plan: an index field, or the document id that ends every key."""

    field: str
    rank: str | None
    """SQL for the value's type rank; `None` for `_id` (always a string)."""
    value: str
    """SQL for the value."""

    @property
    def exprs(self) -> list[str]:
        return [self.value] if self.rank is None else [self.rank, self.value]


def _column(field: str) -> Column:
    if field == "_id":
        return Column(field, None, "id")
    path = ("$" + "".join('."' + part + '"' for part in parse_field(field))).replace("'", "''")
    cases = " ".join(f"WHEN '{name}' THEN {r}" for name, r in _JSON_TYPE_RANKS)
    return Column(field, f"CASE json_type(body, '{path}') {cases} END", f"json_extract(body, '{path}')")


def columns(index: Index | None) -> list[Column]:
    """The key columns of a plan on `index` (`None`: the primary key): its fields, then `_id`."""
    return [_column(f) for f in (index.columns if index else [])] + [_column("_id")]


def _index_exprs(index: Index) -> list[str]:
    # A partitioned index leads with the partition, so one partition is one range of it.
    return ([PARTITION_SQL] if index.partitioned else []) + [e for c in columns(index) for e in c.exprs]


def index_name(index: Index) -> str:
    """The SQLite index serving `index`: named by a digest of its expressions, so that a
    change of how fields are indexed gives new names (and `sync_indexes` rebuilds)."""
    return "mango_" + hashlib.sha1(dumps(_index_exprs(index))).hexdigest()[:16]


def index_ddl(index: Index) -> str:
    """The `CREATE INDEX` statement (live, non-design rows only, like a Mango index)."""
    exprs = ", ".join(_index_exprs(index))
    return f'CREATE INDEX IF NOT EXISTS "{index_name(index)}" ON docs ({exprs}) WHERE deleted = 0 AND design = 0'


def sync_indexes(conn: sqlite3.Connection, partitioned: bool) -> bool:
    """Make the SQLite expression indexes on `conn` match the Mango indexes in design
    docs (within the caller's write transaction; `partitioned`: the database's flag).
    Returns whether anything changed."""
    wanted = {}
    for (body,) in conn.execute("SELECT body FROM docs WHERE design = 1 AND deleted = 0"):
        for index in indexes_from_ddoc(loads(body), partitioned):
            wanted[index_name(index)] = index
    existing = {
        name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'mango\\_%' ESCAPE '\\'"
        )
    }
    for name in existing - wanted.keys():
        conn.execute(f'DROP INDEX "{name}"')
    for name in wanted.keys() - existing:
        conn.execute(index_ddl(wanted[name]))
    return existing != wanted.keys()


class _Bounds:
    """What a column's conditions allow: the ranks, and per rank SQL terms on the value."""

    def __init__(self) -> None:
        self.ranks = set(_ALL_RANKS)
        self.terms: dict[int, list[tuple[str, list[Any]]]] = {}

    def add(self, op: str, arg: Any) -> None:
        if op == "$in":
            if isinstance(arg, list) and 0 < len(arg) <= MAX_SQL_IN:
                by_rank: dict[int, list[Any]] = {}
                for a in arg:
                    by_rank.setdefault(rank(a), []).append(a)
                self.ranks &= by_rank.keys()
                for r, values in by_rank.items():
                    if r in (3, 4) and all(map(bindable, values)):
                        self.terms.setdefault(r, []).append((f"IN ({', '.join('?' * len(values))})", values))
            return
        if op not in ("$eq", "$gt", "$gte", "$lt", "$lte"):
            return
        r = rank(arg)
        fixed = r < 3  # null, false, true: a rank of one value
        if op == "$eq":
            self.ranks &= {r}
        elif op in ("$gt", "$gte"):
            self.ranks &= set(range(r + (fixed and op == "$gt"), 7))
        else:
            self.ranks &= set(range(r + 1 - (fixed and op == "$lt")))
        if r in (3, 4) and bindable(arg) and r in self.ranks:
            sql_op = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
            self.terms.setdefault(r, []).append((sql_op + " ?", [arg]))

    def pinned(self) -> Any:
        """The one value these bounds allow (`rank` and value pinned by equality), or `_NOT_PINNED`."""
        if len(self.ranks) != 1:
            return _NOT_PINNED
        r, = self.ranks
        if r < 3:
            return (None, False, True)[r]
        return next((args[0] for op, args in self.terms.get(r, []) if op == "= ?"), _NOT_PINNED)


_NOT_PINNED: Any = object()


def _value_terms(col: Column, r: int, bounds: _Bounds, args: list[Any]) -> list[str]:
    terms = [f"{col.value} {op}" for op, _ in bounds.terms.get(r, [])]
    for _, a in bounds.terms.get(r, []):
        args.extend(a)
    if r in _FIXED_VALUE and col.rank is not None:
        terms.append(f"{col.value} {_FIXED_VALUE[r]}")
    return terms


def _filter(col: Column, bounds: _Bounds, args: list[Any]) -> list[str]:
    """SQL terms keeping a superset of the rows `bounds` allows on a column that does not
    define the segments (no index seek on it)."""
    if col.rank is None:
        return _value_terms(col, 4, bounds, args) if 4 in bounds.ranks else ["0"]
    if bounds.ranks == _ALL_RANKS and not bounds.terms:
        return []
    plain = sorted(r for r in bounds.ranks if not bounds.terms.get(r))
    alts = [f"{col.rank} IN ({', '.join(map(str, plain))})"] if plain else []
    for r in sorted(bounds.ranks - set(plain)):
        alts.append(" AND ".join([f"{col.rank} = {r}", *_value_terms(col, r, bounds, args)]))
    return ["(" + " OR ".join(alts) + ")" if alts else "0"]


def _after(cols: list[Column], key: list[Any], i: int, descending: bool) -> tuple[str, list[Any]]:
    """SQL and arguments for "sorts after `key`" from column `i` on, in the plan's order:
    exact for scalars, a superset from the first array, object or unbindable number on."""
    gt = "<" if descending else ">"
    col, v = cols[i], key[i]
    rest, rest_args = ("0", []) if i == len(cols) - 1 else _after(cols, key, i + 1, descending)
    r = 4 if col.rank is None else rank(v)
    if col.rank is not None and (r >= COMPOSITE or (r in (3, 4) and not bindable(v))):
        return f"{col.rank} {gt}= {r}", []
    if col.rank is not None and r < 3:
        return f"({col.rank} {gt} {r} OR ({col.rank} = {r} AND {rest}))", rest_args
    by_value = f"({col.value} {gt} ? OR ({col.value} = ? AND {rest}))"
    if col.rank is None:
        return by_value, [v, v, *rest_args]
    return f"({col.rank} {gt} {r} OR ({col.rank} = {r} AND {by_value}))", [v, v, *rest_args]


def _after_value(cols: list[Column], key: list[Any], i: int, descending: bool) -> tuple[str, list[Any]]:
    """`_after` within a segment of column `i` holding the bookmark's rank (a scalar's)."""
    rest, rest_args = ("0", []) if i == len(cols) - 1 else _after(cols, key, i + 1, descending)
    v = key[i]
    if cols[i].rank is not None and rank(v) < 3:
        return rest, rest_args
    gt = "<" if descending else ">"
    return f"({cols[i].value} {gt} ? OR ({cols[i].value} = ? AND {rest}))", [v, v, *rest_args]


class _Segment(NamedTuple):
    ranks: tuple[int, ...]
    bounded: bool
    """Whether the bookmark falls in this segment (its rows are bounded by it)."""


def _segments(col: Column, bounds: _Bounds, after_rank: int | None, descending: bool) -> list[_Segment]:
    """The leading free column's ranks in scan order, split where a range bounds a rank by
    value or the bookmark falls (each such rank a seek of its own) and stretches of other
    ranks joined. `after_rank`: the bookmark's rank in this column (ranks before it are
    left out), or `None`."""
    ranks = sorted(bounds.ranks & ({4} if col.rank is None else _ALL_RANKS), reverse=descending)
    if after_rank is not None:
        ranks = [r for r in ranks if (r <= after_rank if descending else r >= after_rank)]
    out: list[_Segment] = []
    for r in ranks:
        alone = bool(bounds.terms.get(r)) or r == after_rank
        prev = out[-1] if out else None
        if (not alone and prev is not None and not prev.bounded and not bounds.terms.get(prev.ranks[-1])
                and abs(prev.ranks[-1] - r) == 1):
            out[-1] = _Segment((*prev.ranks, r), False)
        else:
            out.append(_Segment((r,), r == after_rank))
    return out


def find_sql(plan: FindPlan) -> list[tuple[str, list[Any]]]:
    """The statements and arguments for `plan`, to be run one after the other: rows of the
    key columns' expressions (rank and value per index field, then the id) followed by
    the body, in the plan's order except within runs of arrays or objects."""
    cols = columns(plan.index)
    select = [e for c in cols for e in c.exprs]
    bounds = []
    for col in cols:
        b = _Bounds()
        for op, arg in plan.conditions.get(col.field, []):
            b.add(op, arg)
        bounds.append(b)
    # Leading columns pinned to one value, then the column whose ranks define the segments.
    common: list[str] = ["deleted = 0", "design = 0"]
    common_args: list[Any] = []
    if plan.partition is not None:
        # The partition as a range of the index scanned: its leading column, or the ids.
        if plan.index is not None:
            common.append(f"{PARTITION_SQL} = ?")
            common_args.append(plan.partition)
        else:
            common.append("id >= ? AND id < ?")
            common_args.extend(id_range(plan.partition))
    pinned_exprs: list[str] = []
    lead = 0
    pinned_values = []
    while lead < len(cols) and (value := bounds[lead].pinned()) is not _NOT_PINNED:
        col = cols[lead]
        if col.rank is not None:
            common.append(f"{col.rank} = {rank(value)}")
        common.extend(_value_terms(col, rank(value), bounds[lead], common_args))
        pinned_exprs.extend(col.exprs)
        pinned_values.append(value)
        lead += 1
    for col, b in list(zip(cols, bounds, strict=True))[lead + 1:]:
        common.extend(_filter(col, b, common_args))
    after, after_rank = plan.after_key, None
    if after is not None:
        prefix = [collation_key(v) for v in pinned_values]
        start = [collation_key(v) for v in after[:lead]]
        if (prefix > start) if not plan.descending else (prefix < start):
            after = None  # the bookmark is before every row
        elif prefix != start:
            return []  # ... or after every row
        elif lead < len(cols):
            after_rank = rank(after[lead]) if cols[lead].rank is not None else 4
    order = " DESC" if plan.descending else ""
    if lead == len(cols):  # every column pinned: at most one row
        return [_statement(select, common, common_args, [], [], [cols[-1].value + order])]
    col = cols[lead]
    statements = []
    for seg in _segments(col, bounds[lead], after_rank, plan.descending):
        where: list[str] = []
        args: list[Any] = []
        if col.rank is not None:
            lo, hi = min(seg.ranks), max(seg.ranks)
            where.append(f"{col.rank} = {lo}" if lo == hi else f"{col.rank} BETWEEN {lo} AND {hi}")
        if len(seg.ranks) == 1:
            where.extend(_value_terms(col, seg.ranks[0], bounds[lead], args))
        if seg.bounded and after is not None:
            v = after[lead]
            if col.rank is None or (seg.ranks[0] in (3, 4) and bindable(v)):
                # A redundant bound on the value lets SQLite start the seek at the bookmark.
                where.append(f"{col.value} {'<' if plan.descending else '>'}= ?")
                args.append(v)
            if col.rank is None or seg.ranks[0] < 3 or bindable(v):
                sql, bound_args = _after_value(cols, after, lead, plan.descending)
                where.append(sql)
                args.extend(bound_args)
        order_exprs = [e for e in select[len(pinned_exprs):] if not (len(seg.ranks) == 1 and e == col.rank)]
        statements.append(_statement(select, common, common_args, where, args, [e + order for e in order_exprs]))
    return statements


def _statement(select: list[str], common: list[str], common_args: list[Any], where: list[str],
               args: list[Any], order: list[str]) -> tuple[str, list[Any]]:
    sql = (f"SELECT {', '.join(select)}, CAST(body AS BLOB) FROM docs WHERE {' AND '.join(common + where)} "
           f"ORDER BY {', '.join(order)}")
    return sql, common_args + args


def rows(conn: sqlite3.Connection, plan: FindPlan, page: int = 256) -> Generator[list[tuple[Any, ...]], None, None]:
    """`plan`'s rows, `page` at a time, statement after statement (the cursor is closed
    when the iterator is)."""
    for sql, args in find_sql(plan):
        cursor = conn.execute(sql, args)
        try:
            while batch := cursor.fetchmany(page):
                yield batch
        finally:
            cursor.close()


def explain(conn: sqlite3.Connection, plan: FindPlan) -> tuple[str, list[str]]:
    """`plan`'s SQL (statements separated by `;`) and SQLite's query plan for them
    (`EXPLAIN QUERY PLAN` lines)."""
    statements = find_sql(plan)
    lines = [row[3] for sql, args in statements for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
    return ";\n".join(sql for sql, _ in statements), lines


def rank_positions(index: Index | None) -> list[int]:
    """Where in a row of `find_sql` the index fields' ranks are."""
    positions, at = [], 0
    for col in columns(index):
        if col.rank is not None:
            positions.append(at)
        at += len(col.exprs)
    return positions
