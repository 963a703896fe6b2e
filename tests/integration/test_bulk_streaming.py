"""`db.bulk()` streams: any iterable, written in bounded `_bulk_docs` batches as its
results are read, one result per document in input order; unread, it writes nothing and
warns."""

from __future__ import annotations

import gc
import warnings

import pytest

import cloudsync

pytestmark = pytest.mark.integration


class Counting:
    """A generator of `n` documents that counts how many it has handed out."""

    def __init__(self, n: int, prefix: str = "g") -> None:
        self.n, self.prefix, self.taken = n, prefix, 0

    def __iter__(self):
        for i in range(self.n):
            self.taken += 1
            yield {"_id": f"{self.prefix}{i:05d}", "i": i}


def test_a_generator_is_written_in_batches_with_results_in_input_order(db):
    """1,234 documents from a generator, 500 per batch: every result in input order, and
    every document stored."""
    results = list(db.bulk(Counting(1234), batch_size=500))
    assert [r.id for r in results] == [f"g{i:05d}" for i in range(1234)]
    assert all(r.ok and r.rev for r in results)
    assert db.info()["doc_count"] == 1234


def test_the_input_is_read_one_batch_at_a_time(db):
    """Reading the first result reads (and writes) one batch of the input, no more."""
    docs = Counting(250)
    write = db.bulk(docs, batch_size=100)
    assert docs.taken == 0 and db.info()["doc_count"] == 0
    next(write)
    assert docs.taken == 100 and db.info()["doc_count"] == 100
    assert write.run() == []
    assert docs.taken == 250 and db.info()["doc_count"] == 250


def test_run_returns_only_the_failures_and_counts(db):
    """run() writes everything and returns the failed rows; written/failed count them."""
    db.create({"_id": "taken"})
    write = db.bulk([{"_id": "a"}, {"_id": "taken"}, {"_id": "b"}], batch_size=2)
    failures = write.run()
    assert [(f.id, f.error) for f in failures] == [("taken", "conflict")]
    assert (write.written, write.failed) == (2, 1)


def test_an_unread_bulk_warns_naming_the_caller_and_writes_nothing(db):
    """A BulkWrite dropped before it was read warns (RuntimeWarning at the calling line)
    and has written nothing."""
    with pytest.warns(RuntimeWarning, match="never read") as caught:
        db.bulk([{"_id": "lost"}])  # the line the warning names
        gc.collect()
    assert caught[0].filename == __file__
    assert db.info()["doc_count"] == 0


def test_closing_an_unread_bulk_does_not_warn(db):
    """close() abandons the write deliberately: no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db.bulk([{"_id": "x"}]).close()
        gc.collect()
    assert db.info()["doc_count"] == 0


def test_new_edits_false_gives_one_result_per_document_across_batches(db):
    """new_edits=False stores the given revisions batch by batch, one result per document."""
    docs = [{"_id": f"r{i}", "_rev": f"1-{i:032x}"} for i in range(5)]
    results = list(db.bulk(docs, new_edits=False, batch_size=2))
    assert [(r.id, r.rev, r.ok) for r in results] == [(d["_id"], d["_rev"], True) for d in docs]
    assert db.get("r3")["_rev"] == docs[3]["_rev"]


def test_a_bad_document_stops_at_its_batch_after_the_earlier_ones(db):
    """A non-mapping raises TypeError when its batch is read; earlier batches are written."""
    docs = [{"_id": "ok1"}, {"_id": "ok2"}, "not a doc", {"_id": "never"}]
    write = db.bulk(docs, batch_size=2)
    assert [r.id for r in (next(write), next(write))] == ["ok1", "ok2"]
    with pytest.raises(TypeError, match="mapping"):
        next(write)
    assert db.info()["doc_count"] == 2


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_a_bad_batch_size_is_a_value_error(db, size):
    """batch_size must be a positive int, checked at the call."""
    with pytest.raises(ValueError, match="batch_size"):
        db.bulk([], batch_size=size)


def test_ids_are_made_on_the_client_for_documents_without_one(db):
    """Documents without _id get a client-made id, the same one the result reports."""
    [result] = list(db.bulk(iter([{"v": 1}])))
    assert db.get(result.id)["v"] == 1
    assert isinstance(result, cloudsync.BulkResult)
