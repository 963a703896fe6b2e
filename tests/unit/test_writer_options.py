"""Writer options and inputs that are refused before anything is sent, and 429/503 storms
(``responses`` fakes: no real server answers those on demand)."""

from __future__ import annotations

import json

import pytest
import responses

import cloudsync

URL = "http://couch.test"


@pytest.fixture
def db() -> cloudsync.Database:
    return cloudsync.Client(URL).database("db")


def policy(attempts: int = 6) -> cloudsync.RetryPolicy:
    return cloudsync.RetryPolicy(attempts=attempts, backoff=0.0, sleep=lambda s: None)


@pytest.mark.parametrize("options", [
    {"batch_size": 0}, {"batch_size": 10, "max_pending": 5}, {"on_full": "drop"}, {"flush_interval": 0},
    {"put_timeout": -1},
])
def test_bad_options_raise_value_error(db, options):
    """An option out of range is refused when the writer is made."""
    with pytest.raises(ValueError):
        db.writer(**options)


def test_put_refuses_a_document_that_is_not_a_mapping(db):
    """put() of a list raises TypeError; nothing is queued."""
    with db.writer() as writer:
        with pytest.raises(TypeError):
            writer.put(["not", "a", "doc"])  # type: ignore[arg-type]
        assert writer.pending == 0


@responses.activate
def test_a_429_and_503_storm_is_retried_until_the_batch_lands(db):
    """429s and 503s are retried with the same batch (same client-made ids) until it is stored."""
    sent: list[list[str]] = []

    def answer(request):
        docs = json.loads(request.body)["docs"]
        sent.append([d["_id"] for d in docs])
        if len(sent) <= 2:
            return (429, {"Retry-After": "0"}, '{"error":"too_many_requests"}')
        if len(sent) <= 4:
            return (503, {}, '{"error":"unavailable"}')
        return (201, {}, json.dumps([{"ok": True, "id": d["_id"], "rev": "1-a"} for d in docs]))

    responses.add_callback(responses.POST, f"{URL}/db/_bulk_docs", callback=answer)
    with db.writer(retry=policy()) as writer:
        writer.put({"n": 1})
        writer.put({"n": 2})
    assert len(sent) == 5 and all(ids == sent[0] for ids in sent)
    assert writer.written == 2 and writer.errors == []


@responses.activate
def test_a_503_that_landed_is_reported_written_not_conflicting(db):
    """A 503 after the server stored the batch: the resend's conflicts are compared with the
    stored revisions (same body, first revision) and reported as written."""
    calls = []

    def answer(request):
        docs = json.loads(request.body)["docs"]
        calls.append(docs)
        if len(calls) == 1:
            return (503, {}, '{"error":"unavailable"}')
        return (201, {}, json.dumps([{"id": d["_id"], "error": "conflict", "reason": "c"} for d in docs]))

    responses.add_callback(responses.POST, f"{URL}/db/_bulk_docs", callback=answer)
    responses.add(responses.GET, f"{URL}/db/a", json={"_id": "a", "_rev": "1-x", "n": 1,
                                                       "_revs_info": [{"rev": "1-x", "status": "available"}]})
    responses.add(responses.GET, f"{URL}/db/b", json={"_id": "b", "_rev": "1-y", "n": "other",
                                                       "_revs_info": [{"rev": "1-y", "status": "available"}]})
    with db.writer(retry=policy()) as writer:
        writer.put({"_id": "a", "n": 1})
        writer.put({"_id": "b", "n": 2})
    assert writer.written == 1
    assert [(r.id, r.error) for r in writer.errors] == [("b", "conflict")]


@responses.activate
def test_a_storm_that_outlasts_the_policy_stops_the_writer(db):
    """503s beyond the retry policy's attempts raise WriterError in the producer, the 503 as its cause."""
    responses.add(responses.POST, f"{URL}/db/_bulk_docs", status=503, json={"error": "unavailable"})
    writer = db.writer(retry=policy(attempts=3))
    writer.put({"n": 1})
    with pytest.raises(cloudsync.WriterError) as raised:
        writer.flush(timeout=10)
    assert isinstance(raised.value.__cause__, cloudsync.ServerError)
    assert len(responses.calls) == 3 and raised.value.unsent == 1
    writer.close()
