"""`_find` and `_explain`: a request parsed and validated, an index chosen, the rows
storage returns checked against the selector, skipped, projected and paged by bookmark.

Selector semantics live in `cloudsync.selector` (shared with the client); the SQL a plan
runs as lives in `storage.find`.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from .._json import dumps, loads
from ..selector import project
from .collation import RowOrder
from .errors import CouchError, bad_request
from .indexes import ALL_DOCS, Index
from .limits import check_budget
from .matching import compile_selector
from .storage import find

__all__ = ["DEFAULT_LIMIT", "NO_INDEX_WARNING", "Query", "run_find"]

NO_INDEX_WARNING = "No matching index found, create an index to optimize query time."
DEFAULT_LIMIT = 25


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


def _nonneg(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise bad_request(f"{name} must be a non-negative integer")
    return value


class Query:
    """A parsed, validated `_find` request and its plan (see `storage.find.FindPlan`).

    `partition`: the query of one partition (`/{db}/_partition/{p}/_find`), which uses
    only partitioned indexes; `partitioned_db`: the database is partitioned, so a global
    query uses only global indexes (CouchDB's rules and errors).
    """

    def __init__(self, body: Any, indexes: list[Index], *, partition: str | None = None,
                 partitioned_db: bool = False) -> None:
        if not isinstance(body, dict):
            raise bad_request("Request body must be a JSON object")
        if partition is not None and body.get("partition", partition) != partition:
            raise bad_request("Conflicting value for `partition` in the request body")
        self.partition = partition
        self.partitioned_db = partitioned_db
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
        self.conditions = _conditions(self.selector)
        self.index = self._choose(indexes, body.get("use_index"))
        if self.index is not None:
            # Like a CouchDB view index, the index holds only documents that have all its
            # fields: a column the selector does not require (a sorted one) still must exist.
            unrequired = [f for f in self.index.columns
                          if f not in ("_id", "_rev") and not _implies_exists(self.conditions.get(f, []))]
            if unrequired:
                self.match = compile_selector({"$and": [self.selector, *({f: {"$exists": True}} for f in unrequired)]})
        self.descending = bool(self.sort) and self.sort[0][1] == "desc"
        self.key_len = (0 if self.index is None else len(self.index.columns)) + 1
        """Values in a row's sort key: one per index column, then the id."""
        self.after_key = None if self.bookmark in (None, "", "nil") else self._decode_bookmark()
        self.order = RowOrder(self.index.columns if self.index else [], find.rank_positions(self.index),
                              self.descending, find.COMPOSITE)

    @property
    def index_name(self) -> str:
        return self.index.name if self.index else "_all_docs"

    def _choose(self, indexes: list[Index], use_index: Any) -> Index | None:
        covered = {f for f, c in self.conditions.items() if _implies_exists(c)}
        constant = {f for f, c in self.conditions.items() if any(op == "$eq" for op, _ in c)}
        sort_fields = [f for f, _ in self.sort]

        def usable(ix: Index) -> bool:
            # As CouchDB's mango_idx_view:is_usable: sorted fields need not be in the
            # selector (a sort implies they exist), and leading columns the selector pins
            # to one value do not change the order.
            if not set(ix.columns) - set(sort_fields) - {"_id", "_rev"} <= covered:
                return False
            columns = ix.columns
            while sort_fields and columns and columns[0] != sort_fields[0] and columns[0] in constant:
                columns = columns[1:]
            return columns[: len(sort_fields)] == sort_fields

        in_scope = [ix for ix in indexes if ix.partitioned == (self.partition is not None)]
        candidates = [ix for ix in in_scope if usable(ix)]
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
            kind = "" if not self.partitioned_db else "partitioned " if self.partition is not None else "global "
            raise CouchError(400, "no_usable_index",
                             f"No {kind}index exists for this sort, try indexing by the sort fields.")
        self.warnings.insert(0, NO_INDEX_WARNING)
        return None

    def _decode_bookmark(self) -> list[Any]:
        try:
            raw = str(self.bookmark)
            key = loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            if (isinstance(key, list) and len(key) == 2 and key[0] == self.index_name and isinstance(key[1], list)
                    and len(key[1]) == self.key_len and isinstance(key[1][-1], str)):
                return key[1]
        except Exception:
            pass
        raise bad_request("Invalid bookmark value")

    def explain(self, db_name: str, conn: sqlite3.Connection) -> dict[str, Any]:
        """The `_explain` answer (with the SQL and SQLite's plan for it, read on `conn`)."""
        sql, plan = find.explain(conn, self)
        return {
            "dbname": db_name,
            "index": self.index.as_json() if self.index else ALL_DOCS,
            "partitioned": self.partitioned_db,
            "selector": self.selector,
            "opts": {"use_index": [], "bookmark": self.bookmark or "nil", "limit": self.limit,
                     "skip": self.skip, "sort": dict(self.sort), "fields": self.fields or "all_fields",
                     "partition": self.partition or ""},
            "limit": self.limit,
            "skip": self.skip,
            "fields": self.fields or "all_fields",
            "sql": sql,
            "query_plan": plan,
        }


def run_find(conn: sqlite3.Connection, query: Query) -> dict[str, Any]:
    """Run `query` on a read connection: the `_find` answer."""
    started = time.perf_counter()
    docs: list[Any] = []
    examined = 0
    to_skip = query.skip
    last_key = None
    partial = query.index.partial_pred if query.index else None

    def matching(batches: Iterator[list[tuple[Any, ...]]]) -> Iterator[tuple[tuple[Any, ...], Any]]:
        nonlocal examined
        for batch in batches:
            check_budget()
            for row in batch:
                examined += 1
                doc = loads(row[-1])
                if (partial is None or partial(doc)) and query.match(doc):
                    yield row, doc

    with contextlib.closing(find.rows(conn, query)) as batches:
        ordered = query.order.ordered(matching(batches), query.after_key, query.skip + query.limit)
        for _, doc in itertools.islice(ordered, query.skip + query.limit) if query.limit else ():
            if to_skip:
                to_skip -= 1
                continue
            docs.append(project(doc, query.fields) if query.fields else doc)
            last_key = query.order.values(doc)
    if last_key is not None:
        bookmark = base64.urlsafe_b64encode(dumps([query.index_name, last_key])).rstrip(b"=").decode()
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
