"""Partitioned databases through the client: `create_database(partitioned=True)`,
`db.partition(name)` and its reads, and the typed errors for ids and queries a partitioned
database refuses. pouchdb-server has no partitions: those tests skip there."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

import cloudsync

pytestmark = pytest.mark.integration

_names = itertools.count()
PARTITIONS = ("north", "south", "west")


@pytest.fixture
def pdb(client: cloudsync.Client, server_kind: str) -> Iterator[cloudsync.Database]:
    """A fresh partitioned database, deleted afterwards."""
    if server_kind == "pouchdb":
        pytest.skip("pouchdb-server has no partitioned databases")
    name = f"part-{os.getpid()}-{next(_names)}"
    database = client.create_database(name, partitioned=True)
    try:
        yield database
    finally:
        client.delete_database(name, missing_ok=True)


@pytest.fixture
def seeded(pdb: cloudsync.Database) -> cloudsync.Database:
    """A partitioned database with 7 documents in each of north, south and west."""
    results = pdb.bulk({"_id": f"{p}:{i}", "region": p, "n": i} for p in PARTITIONS for i in range(7))
    assert all(r.ok for r in results)
    return pdb


def test_create_database_partitioned_shows_in_info(pdb):
    """`create_database(partitioned=True)` makes a database whose info has `props.partitioned`."""
    assert pdb.info()["props"] == {"partitioned": True}


def test_plain_database_is_not_partitioned(db, server_kind):
    """A database created without the flag is not partitioned, and `info()` teaches the handle so."""
    if server_kind == "pouchdb":
        pytest.skip("pouchdb-server has no partitioned databases (nor `props` in its info)")
    assert db.info()["props"] == {}
    assert db.partitioned is False


def test_info_teaches_a_handle_that_its_database_is_partitioned(client, pdb):
    """A handle from `client.database()` learns from `info()` that ids need a partition."""
    handle = client.database(pdb.name)
    assert handle.partitioned is None
    handle.info()
    with pytest.raises(cloudsync.PartitionError):
        handle.create({"_id": "no-partition"})


def test_writes_across_partitions_land_in_their_partition(seeded):
    """Documents written to several partitions are counted by the partition they name."""
    assert [seeded.partition(p).info()["doc_count"] for p in PARTITIONS] == [7, 7, 7]


def test_partition_info_names_the_partition(seeded):
    """`info()` of a partition names it and its database."""
    info = seeded.partition("south").info()
    assert (info["partition"], info["db_name"], info["doc_del_count"]) == ("south", seeded.name, 0)


def test_partition_all_docs_returns_only_that_partition(seeded):
    """`all_docs()` of a partition lists its ids only, paged through the partition."""
    rows = list(seeded.partition("south").all_docs(page_size=3))
    assert [r["id"] for r in rows] == [f"south:{i}" for i in range(7)]


def test_partition_all_docs_with_docs_and_keys(seeded):
    """`all_docs(keys=..., include_docs=True)` answers the documents asked for, in order."""
    rows = list(seeded.partition("west").all_docs(keys=["west:5", "west:1"], include_docs=True))
    assert [r["doc"]["n"] for r in rows] == [5, 1]


def test_partition_all_docs_refuses_a_key_of_another_partition(seeded):
    """A key outside the partition is a PartitionError before anything is sent."""
    with pytest.raises(cloudsync.PartitionError):
        seeded.partition("west").all_docs(keys=["north:1"])


def test_partition_query_returns_only_that_partition(seeded):
    """`query()` of a partition matches its documents only."""
    docs = list(seeded.partition("north").query({"n": {"$gte": 5}}))
    assert sorted(d["_id"] for d in docs) == ["north:5", "north:6"]


def test_partition_query_pages_by_bookmark_each_doc_once(seeded):
    """Paging a partition query by bookmark (a sorted, indexed one and an unindexed one)
    returns every document of the partition exactly once."""
    seeded.create_index(["n"], name="by-n")
    part = seeded.partition("west")
    sorted_ids = [d["_id"] for d in part.query({"n": {"$gte": 0}}, sort=["n"], page_size=2)]
    plain_ids = [d["_id"] for d in part.query({"region": "west"}, page_size=3)]
    assert sorted_ids == [f"west:{i}" for i in range(7)]
    assert sorted(plain_ids) == sorted_ids


def test_partition_explain_uses_the_partitioned_index(seeded):
    """`explain()` of a partition query shows the partitioned index it would use."""
    seeded.create_index(["n"], name="by-n")
    plan = seeded.partition("north").explain({"n": {"$gt": 2}})
    assert (plan["index"]["name"], plan["index"]["partitioned"]) == ("by-n", True)


def test_server_refuses_an_id_without_partition_with_bad_request(client, pdb):
    """The server's refusal of an id without partition is a BadRequest `illegal_docid`
    (a handle that does not know the database is partitioned sends it)."""
    with pytest.raises(cloudsync.BadRequest) as info:
        client.database(pdb.name).create({"_id": "plain"})
    assert info.value.error == "illegal_docid"


def test_client_refuses_an_id_without_partition_before_sending(pdb):
    """A handle that knows its database is partitioned raises PartitionError for such an id."""
    with pytest.raises(cloudsync.PartitionError):
        pdb.create({"_id": "plain"})


def test_client_refuses_a_generated_id_in_a_partitioned_database(pdb):
    """`create()` without `_id` would make an id without partition: PartitionError."""
    with pytest.raises(cloudsync.PartitionError):
        pdb.create({"x": 1})


def test_bulk_refuses_an_id_without_partition_before_sending(pdb):
    """`bulk()` checks every id first: nothing is written when one lacks a partition."""
    with pytest.raises(cloudsync.PartitionError):
        pdb.bulk([{"_id": "north:1"}, {"_id": "plain"}]).run()
    assert pdb.partition("north").info()["doc_count"] == 0


@pytest.mark.parametrize("name", ["", "_hidden", "a:b", 7])
def test_invalid_partition_name_is_a_partition_error(pdb, name):
    """A partition name that is empty, not a str, starts with `_` or holds `:` is refused."""
    with pytest.raises(cloudsync.PartitionError):
        pdb.partition(name)


def test_global_sort_on_a_partitioned_index_is_a_bad_request(seeded):
    """A global query sorted by a field only a partitioned index serves is refused by
    the server as CouchDB does: BadRequest `no_usable_index`."""
    seeded.create_index(["n"], name="by-n")
    with pytest.raises(cloudsync.BadRequest) as info:
        list(seeded.query({"n": {"$gt": 0}}, sort=["n"]))
    assert info.value.error == "no_usable_index"


def test_partition_of_a_plain_database_is_a_bad_request(db, server_kind):
    """Reading a partition of a database that is not partitioned is BadRequest."""
    if server_kind == "pouchdb":
        pytest.skip("pouchdb-server has no partitioned databases")
    with pytest.raises(cloudsync.BadRequest):
        db.partition("p").info()


def test_partitioned_database_survives_a_restart(restartable):
    """The partitioned property is kept: after a restart the server still refuses an id without partition."""
    with cloudsync.Client(restartable.url, timeout=(5, 30)) as client:
        client.create_database("kept", partitioned=True)
        restartable.restart()
        with pytest.raises(cloudsync.BadRequest):
            client.database("kept").create({"_id": "plain"})
        assert client.database("kept").info()["props"] == {"partitioned": True}
