"""db.writer(): batching, ordering, back-pressure, results and retries against both real
servers (the embedded server and pouchdb-server); connection faults through the FaultProxy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

import cloudsync
from tests.faults.proxy import FaultProxy

DEADLINE = 15.0


def wait_until(predicate: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    """Poll `predicate` until it holds or `timeout` passes (the writer offers no event to wait on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def changed_ids(db: cloudsync.Database) -> list[str]:
    return [row["id"] for row in db.request("GET", "_changes")["results"]]


@pytest.fixture
def proxied(db: cloudsync.Database, server_url: str) -> Iterator[tuple[FaultProxy, cloudsync.Database]]:
    """A FaultProxy in front of the test's server, and the test's database reached through it."""
    host, port = server_url.split("//", 1)[1].rsplit(":", 1)
    with FaultProxy(host, int(port)) as proxy, cloudsync.Client(proxy.url, timeout=(5, 30)) as client:
        yield proxy, client.database(db.name)


def test_documents_are_written_in_the_order_they_were_put(db):
    """Results come back, and the database's changes show the documents, in put order."""
    seen: list[str] = []
    with db.writer(batch_size=7, on_result=lambda r: seen.append(r.id)) as writer:
        ids = [writer.put({"i": i}) for i in range(50)]
    assert seen == ids
    assert changed_ids(db) == ids
    assert writer.written == 50 and writer.failed == 0


def test_a_full_batch_is_sent_without_waiting_for_the_interval(db):
    """batch_size documents make a batch at once, long before flush_interval."""
    with db.writer(batch_size=10, flush_interval=300) as writer:
        for i in range(30):
            writer.put({"i": i})
        assert wait_until(lambda: writer.written == 30)
        assert writer.batches == 3


def test_a_partial_batch_is_sent_after_the_flush_interval(db):
    """Fewer than batch_size documents are sent once flush_interval has passed, in one batch."""
    with db.writer(batch_size=100, flush_interval=0.2) as writer:
        for i in range(3):
            writer.put({"i": i})
        assert wait_until(lambda: writer.written == 3)
        assert writer.batches == 1


def test_flush_sends_a_partial_batch_and_waits_for_it(db):
    """flush() returns once every document put before it is acknowledged; batches hold at most batch_size."""
    with db.writer(batch_size=10, flush_interval=300) as writer:
        for i in range(25):
            writer.put({"i": i})
        writer.flush(timeout=DEADLINE)
        assert writer.written == 25 and writer.pending == 0
        assert writer.batches == 3
    assert db.info()["doc_count"] == 25


def test_put_keeps_a_given_id_and_makes_one_otherwise(db):
    """A document's own _id is kept; one without gets a uuid4 hex; the caller's dict is not changed."""
    doc = {"n": 1}
    with db.writer() as writer:
        made = writer.put(doc)
        given = writer.put({"_id": "mine", "n": 2})
    assert given == "mine" and len(made) == 32 and "_id" not in doc
    assert db.get(made)["n"] == 1 and db.get("mine")["n"] == 2


def test_a_conflict_is_reported_to_the_callback_and_collected(db):
    """A document that conflicts is a failed result: on_result gets it, errors keeps it."""
    db.create({"_id": "taken"})
    got: list[cloudsync.BulkResult] = []
    with db.writer(on_result=got.append, keep_results=True) as writer:
        writer.put({"_id": "taken", "again": True})
        writer.put({"_id": "free"})
    assert [(r.id, r.error) for r in writer.errors] == [("taken", "conflict")]
    assert [r.ok for r in got] == [False, True] and writer.results == got
    assert writer.failed == 1 and writer.written == 1


def test_errors_keep_at_most_max_errors(db):
    """Failed results beyond max_errors are counted but not kept."""
    db.bulk([{"_id": f"d{i}"} for i in range(5)]).run()
    with db.writer(max_errors=2) as writer:
        for i in range(5):
            writer.put({"_id": f"d{i}"})
    assert writer.failed == 5 and len(writer.errors) == 2


def test_a_full_writer_raises_at_once_with_on_full_raise(proxied):
    """With on_full="raise", put() on a writer holding max_pending documents raises WriterFull."""
    proxy, db = proxied
    proxy.stall(3.0)
    writer = db.writer(batch_size=2, max_pending=2, flush_interval=0.01, on_full="raise")
    try:
        writer.put({"i": 1})
        writer.put({"i": 2})
        with pytest.raises(cloudsync.WriterFull):
            writer.put({"i": 3})
    finally:
        proxy.heal()
        writer.close(timeout=DEADLINE)
    assert writer.written == 2


def test_a_full_writer_blocks_put_until_there_is_room(proxied):
    """With on_full="block", put() waits while the writer is full and returns once a batch is acknowledged."""
    proxy, db = proxied
    proxy.stall(30.0)
    writer = db.writer(batch_size=2, max_pending=2, flush_interval=0.01, put_timeout=DEADLINE)
    writer.put({"i": 1})
    writer.put({"i": 2})
    returned = threading.Event()
    producer = threading.Thread(target=lambda: (writer.put({"i": 3}), returned.set()), daemon=True)
    producer.start()
    try:
        assert not returned.wait(0.3)  # still blocked while the server's answer is held back
        proxy.heal()
        assert returned.wait(DEADLINE)
    finally:
        proxy.heal()
        writer.close(timeout=DEADLINE)
    producer.join(DEADLINE)
    assert writer.written == 3


def test_a_blocked_put_gives_up_after_put_timeout(proxied):
    """With on_full="block", a put() that finds no room within put_timeout raises WriterFull."""
    proxy, db = proxied
    proxy.stall(30.0)
    writer = db.writer(batch_size=1, max_pending=1, flush_interval=0.01, put_timeout=0.2)
    try:
        writer.put({"i": 1})
        started = time.monotonic()
        with pytest.raises(cloudsync.WriterFull):
            writer.put({"i": 2})
        assert time.monotonic() - started < 5.0
    finally:
        proxy.heal()
        writer.close(timeout=DEADLINE)


def test_flush_gives_up_after_its_timeout(proxied):
    """flush(timeout) raises WriterTimeout while the server has not answered; nothing is lost."""
    proxy, db = proxied
    proxy.stall(30.0)
    writer = db.writer(batch_size=5)
    try:
        writer.put({"i": 1})
        with pytest.raises(cloudsync.WriterTimeout):
            writer.flush(timeout=0.2)
    finally:
        proxy.heal()
        writer.close(timeout=DEADLINE)
    assert writer.written == 1


def test_a_batch_whose_answer_was_lost_is_resent_and_reported_as_written(proxied, db):
    """The answer to a stored batch is cut off; the resend's conflicts are recognised as the
    writer's own writes: every document reported written, each stored once."""
    proxy, through_proxy = proxied
    proxy.truncate_when(rb'"rev":"', offset=3)  # the first connection: the first _bulk_docs answer
    with through_proxy.writer(batch_size=20, retry=cloudsync.RetryPolicy(backoff=0.01)) as writer:
        ids = [writer.put({"i": i}) for i in range(20)]
        ids.append(writer.put({"_id": "given", "i": 20}))
    assert proxy.faults_injected["truncate"] == 1
    assert writer.errors == [] and writer.written == 21
    assert db.info()["doc_count"] == 21
    assert sorted(changed_ids(db)) == sorted(ids)


def test_an_update_whose_answer_was_lost_is_reported_as_written(proxied, db):
    """A document with a _rev, stored by a send whose answer was lost, is reported written
    with the revision the server holds."""
    proxy, through_proxy = proxied
    doc = db.create({"_id": "u", "n": 1})
    proxy.truncate_when(rb'"rev":"', offset=3)
    got: list[cloudsync.BulkResult] = []
    with through_proxy.writer(on_result=got.append, retry=cloudsync.RetryPolicy(backoff=0.01)) as writer:
        writer.put({**doc, "n": 2})
    assert proxy.faults_injected["truncate"] == 1
    stored = db.get("u")
    assert [(r.id, r.ok, r.rev) for r in got] == [("u", True, stored["_rev"])]
    assert stored["_rev"].startswith("2-") and stored["n"] == 2


def test_a_genuine_conflict_after_a_lost_answer_stays_a_conflict(proxied, db):
    """After a resend, a conflict on a document someone else wrote differently is still a conflict."""
    proxy, through_proxy = proxied
    db.create({"_id": "theirs", "by": "them"})
    proxy.truncate_when(rb'"id":"mine"', offset=3)
    with through_proxy.writer(retry=cloudsync.RetryPolicy(backoff=0.01)) as writer:
        writer.put({"_id": "theirs", "by": "us"})
        writer.put({"_id": "mine"})
    assert proxy.faults_injected["truncate"] == 1
    assert [(r.id, r.error) for r in writer.errors] == [("theirs", "conflict")]
    assert db.get("theirs")["by"] == "them"


def test_an_error_in_the_background_is_raised_in_the_producer(client):
    """A batch refused for good (404: no such database) stops the writer; the next put raises WriterError."""
    writer = client.database("no-such-db-for-the-writer").writer(flush_interval=0.01)
    writer.put({"i": 1})
    with pytest.raises(cloudsync.WriterError) as raised:
        assert wait_until(lambda: writer.put({"i": 2}) is None)
    assert isinstance(raised.value.__cause__, cloudsync.NotFound)
    assert raised.value.unsent >= 1
    writer.close()  # the error was raised once already: closing is quiet


def test_exit_raises_a_background_error_not_raised_yet(client):
    """Leaving the with block raises the writer's error when no put or flush has."""
    with pytest.raises(cloudsync.WriterError), client.database("no-such-db-either").writer() as writer:
        writer.put({"i": 1})


def test_an_exception_in_the_block_still_flushes(db):
    """An Exception raised in the with block: what was put is written, then the exception goes on."""
    with pytest.raises(RuntimeError), db.writer(flush_interval=300) as writer:
        writer.put({"_id": "kept"})
        raise RuntimeError("the producer failed")
    assert db.get("kept")["_id"] == "kept"


def test_a_keyboard_interrupt_in_the_block_drops_the_queue(proxied, db):
    """A BaseException (Ctrl-C) in the with block stops the writer without flushing."""
    proxy, through_proxy = proxied
    with pytest.raises(KeyboardInterrupt), through_proxy.writer(flush_interval=300) as writer:
        writer.put({"_id": "dropped"})
        raise KeyboardInterrupt
    assert writer.pending == 1
    assert not db.request("GET", "_all_docs", params={"key": '"dropped"'})["rows"]


def test_close_is_idempotent_and_put_after_close_is_refused(db):
    """close() twice is fine; put() after close raises ValueError."""
    writer = db.writer()
    writer.put({"i": 1})
    writer.close()
    writer.close()
    with pytest.raises(ValueError):
        writer.put({"i": 2})
    assert writer.written == 1


def test_puts_from_many_threads_are_all_written(db):
    """Producers on several threads share one writer; every document is written once."""
    with db.writer(batch_size=25, flush_interval=0.05) as writer:
        threads = [threading.Thread(target=lambda t=t: [writer.put({"t": t, "i": i}) for i in range(100)])
                   for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
    assert writer.written == 400 and db.info()["doc_count"] == 400
