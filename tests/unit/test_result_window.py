"""The live query's result window (no server): a model database and random writes."""

from __future__ import annotations

import random

import pytest

from cloudsync._result_window import ResultWindow, diff, parse_sort, replay
from cloudsync.errors import SelectorError
from cloudsync.selector import compile_selector, project, sort_key

SELECTOR = {"type": "order", "total": {"$gte": 10}}


def brute_force(docs: dict, sort: list, limit: int | None, fields: list | None = None) -> list:
    """What `_find` answers, computed from the model database."""
    match = compile_selector({"$and": [SELECTOR, *({f: {"$exists": True}} for f, _ in sort)]})
    direction = sort[0][1] if sort else "asc"
    found = sorted((d for d in docs.values() if match(d)), key=sort_key([*sort, ("_id", direction)]))
    found = found[:limit] if limit is not None else found
    return [project(d, fields) if fields else d for d in found]


def random_write(rng: random.Random, docs: dict, revs: dict) -> tuple[str, dict | None]:
    doc_id = f"d{rng.randrange(40):02d}"
    revs[doc_id] = revs.get(doc_id, 0) + 1
    if doc_id in docs and rng.random() < 0.2:
        del docs[doc_id]
        return doc_id, {"_id": doc_id, "_rev": f"{revs[doc_id]}-x", "_deleted": True}
    doc = {"_id": doc_id, "_rev": f"{revs[doc_id]}-x", "type": rng.choice(["order", "order", "note"]),
           "total": rng.choice([rng.randrange(30), "n/a", None])}
    if rng.random() < 0.1:
        del doc["total"]
    docs[doc_id] = doc
    return doc_id, doc


@pytest.mark.parametrize("sort", [[], [("total", "asc")], [("total", "desc")]])
@pytest.mark.parametrize("limit, margin", [(None, 0), (5, 0), (5, 3)])
@pytest.mark.parametrize("seed", range(3))
def test_window_tracks_the_model_database(sort, limit, margin, seed):
    """Random writes applied to a window (refilled from the model when it asks) keep its
    results equal to a fresh query, and its events replayed on the first results too."""
    rng = random.Random(seed)
    docs: dict = {}
    revs: dict = {}
    for _ in range(30):
        random_write(rng, docs, revs)
    window = ResultWindow(SELECTOR, sort, limit, margin, None)
    capacity = None if limit is None else limit + margin

    def refill() -> list:
        answer = brute_force(docs, sort, capacity)
        return window.load(answer, complete=capacity is None or len(answer) < capacity)

    events = refill()
    assert events == [] or window.results() == brute_force(docs, sort, limit)
    start = window.results()
    emitted: list = []
    for _ in range(300):
        doc_id, doc = random_write(rng, docs, revs)
        window.apply(doc_id, doc, emitted)
        if window.needs_refill:
            emitted += refill()
        assert window.results() == brute_force(docs, sort, limit)
        if capacity is not None:
            assert len(window) <= capacity
    assert replay(start, emitted) == window.results()


def test_stale_revision_is_ignored():
    """A replayed older revision of a held document does not replace the newer one."""
    window = ResultWindow({}, [], None, 0, None)
    window.load([{"_id": "a", "_rev": "3-c", "v": 3}], complete=True)
    out: list = []
    window.apply("a", {"_id": "a", "_rev": "2-b", "v": 2}, out)
    assert (out, window.results()) == ([], [{"_id": "a", "_rev": "3-c", "v": 3}])


def test_projection_keeps_only_fields():
    """With `fields`, results and events carry only those fields."""
    window = ResultWindow({}, [], None, 0, ["v"])
    window.load([], complete=True)
    out: list = []
    window.apply("a", {"_id": "a", "_rev": "1-a", "v": 1, "w": 2}, out)
    assert window.results() == [{"v": 1}] and out[0].doc == {"v": 1}


def test_diff_reorders_with_moves():
    """`diff` turns one result list into another, and the events replay to it."""
    before = [(k, {"k": k}) for k in "abcde"]
    after = [(k, {"k": k}) for k in "eaxc"]
    events = diff(before, after)
    assert replay([d for _, d in before], events) == [d for _, d in after]


def test_bad_sort_is_a_selector_error():
    """A sort entry that is neither a field nor a one-field object is a SelectorError."""
    with pytest.raises(SelectorError):
        parse_sort([{"a": "asc", "b": "asc"}])
