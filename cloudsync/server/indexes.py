"""Mango json indexes as design documents define them (CouchDB's `language: query`
shape): parsing, validation and the JSON the API answers with. How an index is stored
(a SQLite expression index) is storage's business."""

from __future__ import annotations

from typing import Any

from .._json import dumps
from ..selector import parse_field
from .errors import CouchError, bad_request
from .matching import compile_selector

__all__ = ["ALL_DOCS", "Index", "ddoc_partitioned", "index_ddoc_view", "indexes_from_ddoc", "parse_index_fields"]

ALL_DOCS = {"ddoc": None, "name": "_all_docs", "type": "special", "def": {"fields": [{"_id": "asc"}]}}
"""The special index every database has: documents by id."""


class Index:
    """A Mango json index: a view of a `language: query` design doc."""

    def __init__(self, ddoc: str, name: str, fields: list[tuple[str, str]],
                 partial: dict[str, Any] | None, partitioned: bool = False) -> None:
        self.ddoc = ddoc
        self.partitioned = partitioned
        """Serves queries of one partition only (and never global ones), as in CouchDB."""
        self.name = name
        self.fields = fields
        self.partial = partial
        self.partial_pred = compile_selector(partial) if partial else None
        self.columns = [f for f, _ in fields]

    @property
    def direction(self) -> str:
        return self.fields[0][1]

    def as_json(self) -> dict[str, Any]:
        definition: dict[str, Any] = {"fields": [{f: d} for f, d in self.fields]}
        if self.partial:
            definition["partial_filter_selector"] = self.partial
        return {"ddoc": self.ddoc, "name": self.name, "type": "json", "partitioned": self.partitioned,
                "def": definition}


def _indexable(field: str) -> bool:
    return all('"' not in part and "\\" not in part for part in parse_field(field))


def parse_index_fields(fields: Any) -> list[tuple[str, str]]:
    """`["a", {"b": "desc"}]` -> `[("a", "asc"), ("b", "desc")]`.

    Raises:
        CouchError: 400 `bad_request` when invalid.
    """
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


def ddoc_partitioned(doc: dict[str, Any]) -> bool | None:
    """A design document's `options.partitioned`, or `None` when it does not say."""
    options = doc.get("options")
    value = options.get("partitioned") if isinstance(options, dict) else None
    return value if isinstance(value, bool) else None


def indexes_from_ddoc(doc: dict[str, Any], db_partitioned: bool = False) -> list[Index]:
    """The json indexes a design document defines (others are ignored, like an unknown
    view type). They are partitioned as its `options.partitioned` says, else as the database is."""
    if doc.get("language") != "query" or not isinstance(doc.get("views"), dict):
        return []
    said = ddoc_partitioned(doc)
    partitioned = db_partitioned if said is None else said
    found = []
    for name, view in doc["views"].items():
        try:
            definition = view["options"]["def"]
            fields = parse_index_fields(definition["fields"])
            partial = definition.get("partial_filter_selector") or None
            found.append(Index(doc["_id"], name, fields, partial, partitioned))
        except (KeyError, TypeError, CouchError):
            continue
    return found


def index_ddoc_view(fields: list[tuple[str, str]], partial: dict[str, Any] | None) -> dict[str, Any]:
    """The design-doc view entry CouchDB stores for a json index."""
    definition: dict[str, Any] = {"fields": [{f: d} for f, d in fields]}
    map_fields: dict[str, Any] = {"fields": dict(fields)}
    if partial:
        definition["partial_filter_selector"] = partial
        map_fields["partial_filter_selector"] = partial
    return {"map": map_fields, "reduce": "_count", "options": {"def": definition}}
