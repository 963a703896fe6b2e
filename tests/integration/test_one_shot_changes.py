"""`db.changes()`: a finite, paged read of the normal `_changes` feed, on both servers
(pouchdb-server's seqs are integers, the embedded server's opaque strings)."""

from __future__ import annotations

import logging
import re
import threading

import pytest

import cloudsync

pytestmark = pytest.mark.integration


@pytest.fixture
def numbers(db):
    """A database with 50 documents n00..n49 holding n and its parity."""
    db.bulk([{"_id": f"n{i:02}", "n": i, "even": i % 2 == 0} for i in range(50)]).run()
    return db


def _changes_requests(caplog) -> list[str]:
    """The `_changes` requests the client logged (one debug line per answer)."""
    return [r.getMessage() for r in caplog.records if re.search(r"/_changes -> \d{3}", r.getMessage())]


def test_reads_every_change_once_in_order(numbers):
    """Every document's change comes once, in the order written, and the read ends."""
    changes = list(numbers.changes(page_size=7))
    assert [c.id for c in changes] == [f"n{i:02}" for i in range(50)]
    assert all(isinstance(c, cloudsync.Change) and c.rev for c in changes)


def test_asks_for_a_page_at_a_time(numbers, server_kind, caplog):
    """Memory stays bounded: each request asks for `limit=page_size`, so 50 changes in
    pages of 10 take 5 requests where the server sends `pending` (the embedded server: the
    5th says `pending: 0`), and a 6th that finds the end where it does not (pouchdb-server).
    One request for everything would have been one."""
    caplog.set_level(logging.DEBUG, logger="cloudsync")
    assert len(list(numbers.changes(page_size=10))) == 50
    assert len(_changes_requests(caplog)) == (5 if server_kind == "embedded" else 6)


def test_pages_across_many_pages(db):
    """1,000 documents read 37 at a time: 28 pages, each change once."""
    for start in range(0, 1000, 250):
        db.bulk([{"_id": f"d{i:04}"} for i in range(start, start + 250)]).run()
    ids = [c.id for c in db.changes(page_size=37)]
    assert ids == [f"d{i:04}" for i in range(1000)]


def test_limit_stops_early(numbers):
    """`limit` caps the changes in all, across pages."""
    assert [c.id for c in numbers.changes(limit=12, page_size=5)] == [f"n{i:02}" for i in range(12)]


def test_include_docs_delivers_documents(numbers):
    """`include_docs=True` puts each document on its change."""
    docs = [c.doc for c in numbers.changes(include_docs=True, page_size=20)]
    assert [d["n"] for d in docs] == list(range(50))


def test_selector_filters_the_read(numbers):
    """A selector (`filter=_selector`) keeps only matching changes, across pages."""
    ids = [c.id for c in numbers.changes(selector={"even": True}, page_size=4)]
    assert ids == [f"n{i:02}" for i in range(0, 50, 2)]


def test_doc_ids_filters_the_read(numbers):
    """`doc_ids` (`filter=_doc_ids`) keeps only those documents' changes."""
    ids = [c.id for c in numbers.changes(doc_ids=["n03", "n07", "n42"], page_size=2)]
    assert ids == ["n03", "n07", "n42"]


def test_style_all_docs_lists_every_leaf(db):
    """`style="all_docs"` lists a conflicted document's losing leaf too."""
    doc = db.create({"_id": "c", "v": 1})
    db.bulk([{"_id": "c", "_rev": "1-" + "f" * 32, "v": 2}], new_edits=False).run()
    (change,) = db.changes(style="all_docs")
    assert doc["_rev"] in change.revs and "1-" + "f" * 32 in change.revs


def test_last_seq_resumes_where_a_read_ended(numbers):
    """`since=<last_seq>` of a finished read returns only what was written after it."""
    first = numbers.changes(page_size=16)
    assert len(list(first)) == 50
    numbers.create({"_id": "later"})
    assert [c.id for c in numbers.changes(since=first.last_seq)] == ["later"]


def test_last_seq_follows_a_read_stopped_midway(numbers):
    """Stopped after some changes, `last_seq` is the last one handed out: the rest of a
    page is not skipped by resuming from it."""
    read = numbers.changes(page_size=20)
    taken = [next(read).id for _ in range(5)]
    rest = [c.id for c in numbers.changes(since=read.last_seq)]
    assert taken + rest == [f"n{i:02}" for i in range(50)]


def test_an_empty_database_ends_at_once(db):
    """An empty database gives an empty read that ends (no waiting for changes)."""
    done = threading.Event()
    result: list[list[cloudsync.Change]] = []

    def read() -> None:
        result.append(list(db.changes()))
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), "db.changes() on an empty database did not end"
    assert result == [[]]


def test_a_missing_database_is_not_found(client):
    """Reading a database that does not exist raises NotFound."""
    with pytest.raises(cloudsync.NotFound):
        list(client.database("no-such-db-for-changes").changes())


@pytest.mark.parametrize("options", [{"page_size": 0}, {"limit": -1}, {"style": "everything"},
                                     {"selector": {"a": 1}, "doc_ids": ["x"]}])
def test_bad_options_are_refused_before_any_request(client, options):
    """Options out of range or that do not go together raise ValueError at once."""
    with pytest.raises(ValueError):
        client.database("whatever").changes(**options)
