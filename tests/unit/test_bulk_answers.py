"""`db.bulk()` against answers no real server gives on demand (``responses`` fakes):
a row count that does not match the batch, and a batch that fails after others were
written."""

from __future__ import annotations

import pytest
import responses

import cloudsync

URL = "http://couch.test"


@pytest.fixture
def db() -> cloudsync.Database:
    return cloudsync.Client(URL, retry=cloudsync.RetryPolicy.never()).database("db")


@responses.activate
def test_a_row_count_that_does_not_match_the_batch_is_invalid_response(db):
    """Two rows for three documents cannot be matched up: InvalidResponse, not a wrong pairing."""
    responses.post(f"{URL}/db/_bulk_docs", status=201, json=[{"ok": True, "id": "a", "rev": "1-x"}] * 2)
    with pytest.raises(cloudsync.InvalidResponse, match="2 rows for 3 documents"):
        list(db.bulk([{"_id": "a"}, {"_id": "b"}, {"_id": "c"}]))


@responses.activate
def test_a_failing_batch_raises_after_the_results_of_the_earlier_ones(db):
    """The first batch's results are handed out; the second batch's failure is raised when reached."""
    responses.post(f"{URL}/db/_bulk_docs", status=201, json=[{"ok": True, "id": "a", "rev": "1-x"}])
    responses.post(f"{URL}/db/_bulk_docs", status=500, json={"error": "unknown_error"})
    write = db.bulk([{"_id": "a"}, {"_id": "b"}], batch_size=1)
    assert next(write).rev == "1-x"
    with pytest.raises(cloudsync.ServerError):
        next(write)
    assert write.written == 1 and len(responses.calls) == 2
