"""Where a replication resumes, decided from both sides' checkpoint documents as CouchDB
decides it (`compare_replication_logs`), and the replication id."""

from __future__ import annotations

from cloudsync.replication.checkpoints import replication_id, resume_point


def entry(session: str, seq: object) -> dict[str, object]:
    return {"session_id": session, "recorded_seq": seq}


def test_the_same_session_on_both_sides_resumes_from_the_sources_seq() -> None:
    """Both documents name one session: its `source_last_seq` is the resume point."""
    doc = {"session_id": "s2", "source_last_seq": "9-x", "history": [entry("s2", "9-x"), entry("s1", "4-x")]}
    seq, history = resume_point(doc, dict(doc))
    assert seq == "9-x"
    assert [e["session_id"] for e in history] == ["s2", "s1"]


def test_a_session_the_target_missed_falls_back_to_the_newest_common_one() -> None:
    """The source recorded a newer session than the target (a checkpoint half written):
    the newest session both histories hold is the resume point."""
    source = {"session_id": "s3", "source_last_seq": 30, "history": [entry("s3", 30), entry("s2", 20), entry("s1", 10)]}
    target = {"session_id": "s2", "source_last_seq": 20, "history": [entry("s2", 20), entry("s1", 10)]}
    assert resume_point(source, target)[0] == 20
    assert resume_point(target, source)[0] == 20


def test_no_common_session_starts_over() -> None:
    """Histories without a session in common (a database recreated) start from the beginning."""
    source = {"session_id": "a", "history": [entry("a", 5)]}
    target = {"session_id": "b", "history": [entry("b", 7)]}
    assert resume_point(source, target) == (None, [])


def test_a_checkpoint_on_one_side_only_starts_over() -> None:
    """A missing document on either side (never trusted alone) starts from the beginning."""
    doc = {"session_id": "a", "source_last_seq": 5, "history": [entry("a", 5)]}
    assert resume_point(doc, None) == (None, [])
    assert resume_point(None, doc) == (None, [])


def test_pouchdb_shaped_history_entries_are_read_by_their_last_seq() -> None:
    """PouchDB's history entries carry `last_seq`, not `recorded_seq`."""
    source = {"session_id": "p2", "last_seq": 8, "history": [{"session_id": "p2", "last_seq": 8},
                                                           {"session_id": "p1", "last_seq": 3}]}
    target = {"session_id": "p1", "last_seq": 3, "history": [{"session_id": "p1", "last_seq": 3}]}
    assert resume_point(source, target)[0] == 3


def test_the_replication_id_depends_on_the_databases_and_the_filter_only() -> None:
    """The same databases and filter give the same id (doc_ids in any order, selector keys
    in any order); another filter or direction gives another."""
    a, b = "http://127.0.0.1:1/a", "http://127.0.0.1:2/b"
    assert replication_id(a, b) == replication_id(a, b)
    assert replication_id(a, b) != replication_id(b, a)
    assert replication_id(a, b, doc_ids=["x", "y"]) == replication_id(a, b, doc_ids=["y", "x"])
    assert replication_id(a, b, selector={"t": 1, "u": 2}) == replication_id(a, b, selector={"u": 2, "t": 1})
    assert replication_id(a, b, selector={"t": 1}) != replication_id(a, b)
