"""Checkpoint stores: memory, file (atomic replace), _local document."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import responses

from cloudsync._http import HTTP
from cloudsync._retry import RetryPolicy
from cloudsync.checkpoint import FileCheckpoint, LocalDocCheckpoint, MemoryCheckpoint
from cloudsync.database import Database


def test_memory_roundtrip() -> None:
    """MemoryCheckpoint returns what was saved, None before."""
    store = MemoryCheckpoint()
    assert store.load() is None
    store.save("13-g1AAA")
    assert store.load() == "13-g1AAA"


def test_file_missing_is_none(tmp_path: Path) -> None:
    """A file that does not exist loads as None."""
    assert FileCheckpoint(tmp_path / "cp.json").load() is None


def test_file_roundtrip_keeps_seq_type(tmp_path: Path) -> None:
    """Integers and strings come back as saved (seqs are opaque)."""
    store = FileCheckpoint(tmp_path / "cp.json", interval=0)
    store.save(42)
    assert FileCheckpoint(tmp_path / "cp.json").load() == 42
    store.save("5-abc")
    assert store.load() == "5-abc"


def test_file_replaced_atomically_no_temp_left(tmp_path: Path, monkeypatch) -> None:
    """save() writes a temp file and os.replace()s it over the checkpoint; nothing else stays."""
    store = FileCheckpoint(tmp_path / "cp.json", interval=0)
    store.save(1)
    calls = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append((a, b)), real(a, b)))
    store.save(2)
    assert calls and Path(calls[0][1]) == tmp_path / "cp.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]
    assert json.loads((tmp_path / "cp.json").read_text()) == {"seq": 2}


def test_file_failed_write_keeps_old(tmp_path: Path, monkeypatch) -> None:
    """When the replace fails the old checkpoint is intact and the temp file removed."""
    store = FileCheckpoint(tmp_path / "cp.json", fsync=False, interval=0)
    store.save(1)

    def boom(a, b):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with contextlib.suppress(OSError):
        store.save(2)
    assert store.load() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]


def _DB() -> Database:
    return Database(HTTP("http://couch.test", retry=RetryPolicy.never()), "orders")


@responses.activate
def test_local_doc_missing_is_none() -> None:
    """A missing _local document loads as None."""
    responses.get("http://couch.test/orders/_local/cp", status=404, json={"error": "not_found"})
    assert LocalDocCheckpoint(_DB(), "cp").load() is None


@responses.activate
def test_local_doc_save_uses_rev() -> None:
    """save() PUTs {"seq": ...} with the _rev from the last load/save."""
    responses.get("http://couch.test/orders/_local/cp", json={"_id": "_local/cp", "_rev": "0-1", "seq": 5})
    responses.put("http://couch.test/orders/_local/cp", json={"ok": True, "id": "_local/cp", "rev": "0-2"})
    store = LocalDocCheckpoint(_DB(), "cp")
    assert store.load() == 5
    store.save(6)
    store.save(7)
    bodies = [json.loads(c.request.body) for c in responses.calls if c.request.method == "PUT"]
    assert bodies == [{"seq": 6, "_rev": "0-1"}, {"seq": 7, "_rev": "0-2"}]


@responses.activate
def test_local_doc_conflict_reloads_and_overwrites() -> None:
    """On 409 the store re-reads the document's rev once and writes again."""
    responses.put("http://couch.test/orders/_local/cp", status=409, json={"error": "conflict"})
    responses.get("http://couch.test/orders/_local/cp", json={"_id": "_local/cp", "_rev": "0-9", "seq": 1})
    responses.put("http://couch.test/orders/_local/cp", json={"ok": True, "rev": "0-10"})
    store = LocalDocCheckpoint(_DB(), "cp")
    store.save(3)
    assert json.loads(responses.calls[-1].request.body) == {"seq": 3, "_rev": "0-9"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_file_writes_at_most_once_per_interval(tmp_path: Path) -> None:
    """Saves within ``interval`` of the last write stay in memory; the file keeps the older seq."""
    clock = Clock()
    store = FileCheckpoint(tmp_path / "cp.json", interval=1.0, clock=clock)
    store.save(1)
    clock.now = 0.5
    store.save(2)
    assert FileCheckpoint(tmp_path / "cp.json").load() == 1


def test_file_writes_the_next_save_after_the_interval(tmp_path: Path) -> None:
    """The first save once ``interval`` has passed is written."""
    clock = Clock()
    store = FileCheckpoint(tmp_path / "cp.json", interval=1.0, clock=clock)
    store.save(1)
    clock.now = 0.5
    store.save(2)
    clock.now = 1.5
    store.save(3)
    assert FileCheckpoint(tmp_path / "cp.json").load() == 3


def test_file_save_final_writes_at_once(tmp_path: Path) -> None:
    """The save on close is written whatever the interval."""
    clock = Clock()
    store = FileCheckpoint(tmp_path / "cp.json", interval=1.0, clock=clock)
    store.save(1)
    store.save_final(2, timeout=0.5)
    assert FileCheckpoint(tmp_path / "cp.json").load() == 2


def test_file_flush_writes_a_waiting_save(tmp_path: Path) -> None:
    """flush() writes a save that was waiting for its interval."""
    clock = Clock()
    store = FileCheckpoint(tmp_path / "cp.json", interval=1.0, clock=clock)
    store.save(1)
    store.save(2)
    store.flush()
    assert FileCheckpoint(tmp_path / "cp.json").load() == 2


def test_file_default_does_not_write_every_save(tmp_path: Path, monkeypatch) -> None:
    """By default 2,000 saves in quick succession write the file a handful of times, not 2,000."""
    writes = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (writes.append(b), real(a, b)))
    store = FileCheckpoint(tmp_path / "cp.json")
    started = time.monotonic()
    for seq in range(2000):
        store.save(seq)
    elapsed = time.monotonic() - started
    assert len(writes) <= 2 + int(elapsed / store.interval)
    store.save_final(1999, timeout=1.0)
    assert FileCheckpoint(tmp_path / "cp.json").load() == 1999
