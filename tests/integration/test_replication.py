"""cloudsync.replicate() between real servers: pouchdb-server → embedded, embedded →
pouchdb-server, embedded → embedded; both sides compared document by document."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

import cloudsync
from tests.integration.replication_helpers import fill, state

PAIRS = [("pouchdb", "embedded"), ("embedded", "pouchdb"), ("embedded", "embedded")]
_names = itertools.count()


def same(source: cloudsync.Database, target: cloudsync.Database) -> bool:
    """Whether both sides hold the same documents, leaves, bodies, histories and attachments."""
    revpos = not _POUCHDB_TARGETS.get(target.url, False)
    return state(target, revpos=revpos) == state(source, revpos=revpos)


_POUCHDB_TARGETS: dict[str, bool] = {}


@pytest.fixture
def databases(request: pytest.FixtureRequest) -> Iterator[tuple[cloudsync.Database, cloudsync.Database]]:
    """A new source database (on the pair's first server) and a target name (on its second)."""
    source_kind, target_kind = request.param
    made = []
    with cloudsync.Client(request.getfixturevalue(f"{source_kind}_url"), timeout=(5, 60)) as sc, \
            cloudsync.Client(request.getfixturevalue(f"{target_kind}_url"), timeout=(5, 60)) as tc:
        name = f"rep-{os.getpid()}-{next(_names)}"
        source = sc.create_database(f"{name}-source")
        made.append((sc, source.name))
        target = tc.database(f"{name}-target")
        _POUCHDB_TARGETS[target.url] = target_kind == "pouchdb"
        made.append((tc, target.name))
        try:
            yield source, target
        finally:
            for client, db_name in made:
                client.delete_database(db_name, missing_ok=True)


pairs = pytest.mark.parametrize("databases", PAIRS, indirect=True, ids=lambda p: "-to-".join(p))


@pairs
def test_a_replication_copies_every_leaf_body_history_and_attachment(databases: Any) -> None:
    """Updates, deletions, conflicts (a deleted branch too) and attachments arrive: both
    sides hold the same winner and the same leaves, bodies, histories and attachments."""
    source, target = databases
    fill(source)
    rep = cloudsync.replicate(source, target, create_target=True)
    assert rep.state == "completed"
    assert rep.progress.docs_written == rep.progress.missing_found > 0
    assert rep.progress.pending == 0 and rep.progress.doc_write_failures == 0
    assert same(source, target)


@pairs
def test_a_second_run_resumes_from_the_checkpoint_and_copies_only_what_is_new(databases: Any) -> None:
    """Run again with nothing new, nothing is read; after more writes, only those are."""
    source, target = databases
    fill(source)
    first = cloudsync.replicate(source, target, create_target=True).progress
    again = cloudsync.replicate(source, target).progress
    assert (again.changes_read, again.docs_written) == (0, 0)
    assert again.last_seq == first.last_seq
    fill(source, prefix="more-", docs=10)
    more = cloudsync.replicate(source, target).progress
    assert 0 < more.changes_read < first.changes_read
    assert same(source, target)


@pytest.mark.parametrize("databases", [("pouchdb", "embedded"), ("embedded", "pouchdb")], indirect=True,
                         ids=lambda p: "-to-".join(p))
def test_without_bulk_get_documents_are_read_with_open_revs(databases: Any) -> None:
    """`use_bulk_get=False` reads each document with `GET ?open_revs=` (what a server
    without `_bulk_get` gets): the outcome is the same."""
    source, target = databases
    fill(source, docs=30)
    cloudsync.replicate(source, target, create_target=True, use_bulk_get=False)
    assert same(source, target)


@pytest.mark.parametrize("databases", [("embedded", "embedded")], indirect=True, ids=lambda p: "-to-".join(p))
def test_small_batches_and_attachment_groups_give_the_same_outcome(databases: Any) -> None:
    """Batches of 7 changes and attachment reads of about 1 byte each (one document per
    request) copy the same as the defaults."""
    source, target = databases
    fill(source, docs=40)
    rep = cloudsync.replicate(source, target, create_target=True, batch_size=7, attachment_bytes=1)
    assert rep.progress.changes_read == len(state(source))
    assert same(source, target)


@pytest.mark.parametrize("databases", [("pouchdb", "embedded")], indirect=True, ids=lambda p: "-to-".join(p))
def test_a_selector_replicates_only_matching_documents(databases: Any) -> None:
    """With `selector`, only the documents it matches reach the target."""
    source, target = databases
    source.bulk([{"_id": f"d{i}", "keep": i % 2 == 0} for i in range(20)]).run()
    cloudsync.replicate(source, target, create_target=True, selector={"keep": True})
    assert sorted(state(target)) == sorted(f"d{i}" for i in range(0, 20, 2))


@pytest.mark.parametrize("databases", [("embedded", "pouchdb")], indirect=True, ids=lambda p: "-to-".join(p))
def test_doc_ids_replicates_only_those_documents(databases: Any) -> None:
    """With `doc_ids`, only those documents reach the target."""
    source, target = databases
    source.bulk([{"_id": f"d{i}"} for i in range(10)]).run()
    cloudsync.replicate(source, target, create_target=True, doc_ids=["d3", "d7"])
    assert sorted(state(target)) == ["d3", "d7"]


@pytest.mark.parametrize("databases", [("embedded", "embedded")], indirect=True, ids=lambda p: "-to-".join(p))
def test_a_missing_target_is_an_error_unless_create_target(databases: Any) -> None:
    """Without `create_target` a target that does not exist raises NotFound at once."""
    source, target = databases
    with pytest.raises(cloudsync.NotFound):
        cloudsync.replicate(source, target)
    assert not target.exists()


@pytest.mark.parametrize("databases", [("embedded", "embedded")], indirect=True, ids=lambda p: "-to-".join(p))
def test_bad_arguments_raise_typed_errors(databases: Any) -> None:
    """A source that is not a Database, a str for doc_ids, selector with doc_ids, or a
    batch size below 1 raise TypeError/ValueError before any request."""
    source, target = databases
    with pytest.raises(TypeError):
        cloudsync.replicate("http://127.0.0.1:1/x", target)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cloudsync.replicate(source, target, doc_ids="abc")
    with pytest.raises(ValueError):
        cloudsync.replicate(source, target, selector={"a": 1}, doc_ids=["a"])
    with pytest.raises(ValueError):
        cloudsync.replicate(source, target, batch_size=0)


@pytest.mark.parametrize("databases", [("embedded", "embedded")], indirect=True, ids=lambda p: "-to-".join(p))
def test_stopping_mid_way_records_what_was_written_and_the_next_run_resumes(databases: Any) -> None:
    """A replication stopped after a few batches records their seq; the next run reads only
    the changes after it and the two runs together copy everything."""
    source, target = databases
    source.bulk([{"_id": f"d{i:04}"} for i in range(600)]).run()
    runs: list[cloudsync.Replication] = []

    def stop_after_two_batches(progress: cloudsync.ReplicationProgress) -> None:
        if progress.docs_written >= 200 and runs:
            runs[0].stop(timeout=0)

    rep = cloudsync.Replication(source, target, create_target=True, batch_size=100,
                                on_progress=stop_after_two_batches)
    runs.append(rep)
    rep.start()
    assert rep.wait(timeout=60)
    assert rep.state == "stopped"
    written = rep.progress.docs_written
    assert 200 <= written < 600
    second = cloudsync.replicate(source, target).progress
    assert second.changes_read == 600 - written
    assert same(source, target)
