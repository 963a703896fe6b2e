"""One table of selectors and documents, run through the client-side matcher
(`cloudsync.selector`, which live queries use), the embedded server's `_find` and
pouchdb-server's `_find`: all three must return the same documents in the same order.
Where a server deviates from CouchDB's semantics, the case says so (an expected
failure on that server only, with the reason)."""

from __future__ import annotations

import pytest

from cloudsync.selector import compile_selector, sort_key

pytestmark = pytest.mark.integration

DOCS = [
    {"_id": "null", "v": None},
    {"_id": "false", "v": False},
    {"_id": "true", "v": True},
    {"_id": "int", "v": 1},
    {"_id": "float", "v": 2.5},
    {"_id": "str-a", "v": "a"},
    {"_id": "str-B", "v": "B"},
    {"_id": "array", "v": [1, "x"]},
    {"_id": "object", "v": {"k": 1}},
    {"_id": "missing"},
    {"_id": "ann", "name": "ann", "age": 31, "tags": ["x", "y"], "addr": {"city": "Oslo"}, "a.b": 1,
     "items": [{"q": 1}, {"q": 5}], "map": {"k1": 1, "k2": 2}},
    {"_id": "bob", "name": "bob", "age": 25, "tags": ["y"], "addr": {"city": "Rome"}, "items": [{"q": 4}],
     "map": {"z": 1}},
    {"_id": "cat", "name": "cat", "age": 40, "tags": [], "items": [], "map": {}},
    {"_id": "dan", "name": "dan", "age": 25, "tags": ["x", "z", "y"], "addr": {"city": "Oslo"}},
]

# Indexes the sorted cases need (on both servers).
INDEXES = [["age"], ["age", "name"], ["v"]]

POUCH_TYPE_ORDER = "pouchdb-server 4.2.0 compares values of different JSON types by JavaScript rules, not CouchDB's collation"
POUCH_KEYMAP = "pouchdb-server 4.2.0 has no $keyMapMatch"
POUCH_NULL_RANGE = "pouchdb-server 4.2.0 answers a 400 for $gt null over documents lacking the field"

# (case id, selector, sort, {server: why it deviates from CouchDB's semantics} or None)
TABLE = [
    ("gt-null-is-every-value", {"v": {"$gt": None}}, None, {"pouchdb": POUCH_NULL_RANGE}),
    ("lt-number-is-null-and-booleans", {"v": {"$lt": 1}}, None,
     {"pouchdb": POUCH_TYPE_ORDER}),
    ("gte-string-is-strings-arrays-objects", {"v": {"$gte": "B"}}, None, None),
    ("eq-false-is-not-zero", {"v": {"$eq": False}}, None, None),
    ("and", {"$and": [{"age": {"$gt": 20}}, {"age": {"$lt": 35}}]}, None, None),
    ("or", {"$or": [{"name": "ann"}, {"age": 40}]}, None, None),
    ("nor", {"age": {"$gt": 0}, "$nor": [{"name": "ann"}, {"age": 40}]}, None, None),
    ("not", {"age": {"$gt": 0}, "$not": {"name": "ann"}}, None, None),
    ("in", {"name": {"$in": ["ann", "dan", "zed"]}}, None, None),
    ("in-on-array-field", {"tags": {"$in": ["z"]}}, None, None),
    ("nin", {"name": {"$nin": ["ann", "dan"]}}, None, None),
    ("exists-true", {"addr": {"$exists": True}}, None, None),
    ("exists-false", {"age": {"$gt": 0}, "addr": {"$exists": False}}, None, None),
    ("type-string", {"v": {"$type": "string"}}, None, None),
    ("type-null", {"v": {"$type": "null"}}, None, None),
    ("regex", {"name": {"$regex": "^[ab]"}}, None, None),
    ("elem-match", {"items": {"$elemMatch": {"q": {"$gt": 3}}}}, None, None),
    ("all-match", {"items": {"$allMatch": {"q": {"$gt": 3}}}}, None, None),
    ("size", {"tags": {"$size": 1}}, None, None),
    ("mod", {"age": {"$mod": [5, 0]}}, None, None),
    ("key-map-match", {"map": {"$keyMapMatch": {"$eq": "k2"}}}, None, {"pouchdb": POUCH_KEYMAP}),
    ("dotted-field", {"addr.city": "Oslo"}, None, None),
    ("escaped-dot", {"a\\.b": 1}, None, None),
    ("sort-asc", {"age": {"$gt": 0}}, [{"age": "asc"}], None),
    ("sort-desc", {"age": {"$gt": 0}}, [{"age": "desc"}], None),
    ("sort-two-fields", {"age": {"$gt": 0}, "name": {"$gt": None}}, [{"age": "desc"}, {"name": "desc"}], None),
    ("sort-across-types", {"v": {"$gte": None}}, [{"v": "asc"}],
     {"pouchdb": POUCH_TYPE_ORDER}),
]


def matcher_ids(selector: dict, sort: list | None) -> list[str]:
    """The matcher's answer, in `_find`'s order (ties and no sort: by `_id`)."""
    pairs = [next(iter(s.items())) for s in sort or []]
    match = compile_selector({"$and": [selector, *({f: {"$exists": True}} for f, _ in pairs)]})
    direction = pairs[0][1] if pairs else "asc"
    return [d["_id"] for d in sorted((d for d in DOCS if match(d)), key=sort_key([*pairs, ("_id", direction)]))]


@pytest.fixture
def table_db(db):
    db.bulk(DOCS).run()
    for fields in INDEXES:
        db.create_index(fields)
    return db


@pytest.mark.parametrize("case, selector, sort, deviations", TABLE, ids=[row[0] for row in TABLE])
def test_servers_agree_with_the_matcher(request, table_db, server_kind, case, selector, sort, deviations):
    """The server's `_find` returns the documents the matcher selects (in the same order,
    when sorted)."""
    if deviations and server_kind in deviations:
        request.applymarker(pytest.mark.xfail(reason=deviations[server_kind], strict=True))
    found = [d["_id"] for d in table_db.query(selector, sort=sort, fields=["_id"])]
    expected = matcher_ids(selector, sort)
    if sort is None:  # the order is the chosen index's: only a sort defines it
        found, expected = sorted(found), sorted(expected)
    assert found == expected
