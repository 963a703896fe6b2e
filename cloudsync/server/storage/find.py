"""Mango on SQLite: json indexes as expression indexes on `json_extract(body, ...)`, and
a query plan turned into one SQL statement over `docs`.

The statement walks the primary key (`_all_docs`) or the plan's index; conditions on
the index's columns are pushed into SQL so the index bounds the scan. SQL only has to
return a superset: the planner checks every row against the full selector in Python.
SQLite's type order differs from CouchDB's for `null`, booleans (0/1) and arrays/objects
(their JSON text), so such values may be missing from an indexed range query's results.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Generator
from typing import Any, Protocol

from ..._json import dumps
from ...selector import parse_field
from ..indexes import Index
from ..limits import MAX_INT
from ..partitions import PARTITION_SQL, id_range

__all__ = ["FindPlan", "bindable", "explain", "field_expr", "find_sql", "index_ddl", "index_name", "rows"]

MAX_SQL_IN = 500
"""`$in` lists longer than this are not pushed into SQL (SQLite's bound-parameter limit)."""
_SQL_INT_MIN = -(1 << 63)


class FindPlan(Protocol):
    """What `find_sql` reads of a planned query (see `cloudsync.server.query.Query`)."""

    index: Index | None
    conditions: dict[str, list[tuple[str, Any]]]
    """Top-level AND conditions per dotted field: `[(operator, argument), ...]`."""
    descending: bool
    after_key: list[Any] | None
    """The sort key the last page ended at (one value per index column, then the id)."""
    partition: str | None
    """Only this partition's documents (its index, if any, is a partitioned one)."""


def field_expr(field: str) -> str:
    """The SQL expression reading `field` from a stored body (shared by index and query)."""
    if field == "_id":
        return "id"
    path = "$" + "".join('."' + part + '"' for part in parse_field(field))
    return "json_extract(body, '" + path.replace("'", "''") + "')"


def index_name(index: Index) -> str:
    """The SQLite index serving `index` (one per distinct field list, global or partitioned)."""
    key = [":partitioned", *index.columns] if index.partitioned else index.columns
    return "mango_" + hashlib.sha1(dumps(key)).hexdigest()[:16]


def index_ddl(index: Index) -> str:
    """The `CREATE INDEX` statement (live, non-design rows only, like a Mango index). A
    partitioned index leads with the partition, so one partition is one range of it."""
    exprs = ", ".join(([PARTITION_SQL] if index.partitioned else []) + [field_expr(f) for f in index.columns])
    return f'CREATE INDEX IF NOT EXISTS "{index_name(index)}" ON docs ({exprs}, id) WHERE deleted = 0 AND design = 0'


def bindable(v: Any) -> bool:
    """Whether SQLite can bind and compare `v` as the JSON value it is (integers outside
    signed 64 bits cannot be bound: those are filtered in Python only)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return _SQL_INT_MIN <= v <= MAX_INT
    return isinstance(v, (str, float))


def _pushdown(expr: str, conds: list[tuple[str, Any]], args: list[Any]) -> list[str]:
    """SQL terms selecting a superset of the rows `conds` match on `expr`."""
    terms = []
    for op, arg in conds:
        if op == "$eq" and arg is None:
            terms.append(f"{expr} IS NULL")
        elif op == "$eq" and (bindable(arg) or isinstance(arg, bool)):
            terms.append(f"{expr} = ?")
            args.append(int(arg) if isinstance(arg, bool) else arg)
        elif op in ("$gt", "$gte") and arg is None:
            terms.append(f"{expr} IS NOT NULL")
        elif op in ("$gt", "$gte", "$lt", "$lte") and bindable(arg):
            terms.append(f"{expr} {dict(gt='>', gte='>=', lt='<', lte='<=')[op[1:]]} ?")
            args.append(arg)
        elif (op == "$in" and isinstance(arg, list) and 0 < len(arg) <= MAX_SQL_IN
              and all(bindable(a) or isinstance(a, bool) for a in arg)):
            terms.append(f"{expr} IN ({', '.join('?' * len(arg))})")
            args.extend(int(a) if isinstance(a, bool) else a for a in arg)
    return terms


def _after(exprs: list[str], key: list[Any], descending: bool, args: list[Any]) -> str:
    """SQL for "sorts after `key`" in the plan's order (NULLs sort first ascending)."""

    def after(i: int) -> str:
        expr, v = exprs[i], key[i]
        last = i == len(key) - 1
        if not descending:
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

    if not descending and key[0] is not None:
        # A redundant lower bound lets SQLite start the index scan at the bookmark. It
        # comes first in the SQL, so its argument is bound first.
        args.append(key[0])
        return f"{exprs[0]} >= ? AND {after(0)}"
    return after(0)


def find_sql(plan: FindPlan) -> tuple[str, list[Any]]:
    """The statement and arguments for `plan`: rows of the sort key's values (one per
    index column, then the id) followed by the body, in the plan's order."""
    args: list[Any] = []
    where = ["deleted = 0", "design = 0"]
    index = plan.index
    if plan.partition is not None:
        # The partition as a range of the index scanned: its leading column, or the ids.
        if index is not None:
            where.append(f"{PARTITION_SQL} = ?")
            args.append(plan.partition)
        else:
            where.append("id >= ? AND id < ?")
            args.extend(id_range(plan.partition))
    exprs = ["id"] if index is None else [field_expr(f) for f in index.columns] + ["id"]
    constant = set()
    for field, fconds in plan.conditions.items():
        if field == "_id" or (index is not None and field in index.columns):
            terms = _pushdown(field_expr(field), fconds, args)
            where.extend(terms)
            if any(t.endswith((" = ?", " IS NULL")) for t in terms):
                constant.add(field_expr(field))
    if plan.after_key is not None:
        where.append(_after(exprs, plan.after_key, plan.descending, args))
    # Leading columns pinned by equality are left out of ORDER BY: the order is the
    # same, and SQLite only sees that the index provides it without them.
    order_exprs = list(exprs)
    while len(order_exprs) > 1 and order_exprs[0] in constant:
        order_exprs.pop(0)
    order = " DESC" if plan.descending else ""
    sql = (f"SELECT {', '.join(exprs)}, CAST(body AS BLOB) FROM docs WHERE {' AND '.join(where)} "
           f"ORDER BY {', '.join(e + order for e in order_exprs)}")
    return sql, args


def rows(conn: sqlite3.Connection, plan: FindPlan, page: int = 256) -> Generator[list[tuple[Any, ...]], None, None]:
    """`plan`'s rows, `page` at a time (the cursor is closed when the iterator is)."""
    sql, args = find_sql(plan)
    cursor = conn.execute(sql, args)
    try:
        while True:
            batch = cursor.fetchmany(page)
            if not batch:
                return
            yield batch
    finally:
        cursor.close()


def explain(conn: sqlite3.Connection, plan: FindPlan) -> tuple[str, list[str]]:
    """`plan`'s SQL and SQLite's query plan for it (`EXPLAIN QUERY PLAN` lines)."""
    sql, args = find_sql(plan)
    return sql, [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
