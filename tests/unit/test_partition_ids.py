"""The client's checks of partition names and of ids for a partitioned database, which
agree with the server's (`couch_partition:validate_docid`), and the partition's path."""

from __future__ import annotations

import pytest

import cloudsync
from cloudsync.partition import check_partition_name, check_partitioned_id, partition_path


@pytest.mark.parametrize("doc_id", ["p:1", "p:a:b", "été:x", "_design/d", "_local/c"])
def test_ids_a_partitioned_database_takes_pass(doc_id):
    """`partition:docid` ids, and design and local ids, pass the check."""
    check_partitioned_id(doc_id)


@pytest.mark.parametrize("doc_id", ["plain", "p:", ":x", "_p:x"])
def test_ids_without_a_valid_partition_are_partition_errors(doc_id):
    """An id without `:`, with an empty rest, an empty partition or a `_` partition is refused."""
    with pytest.raises(cloudsync.PartitionError):
        check_partitioned_id(doc_id)


@pytest.mark.parametrize("name", ["", "_x", "a:b", None, 3])
def test_invalid_partition_names_are_partition_errors(name):
    """A partition name must be a non-empty str without a leading `_` or a `:`."""
    with pytest.raises(cloudsync.PartitionError):
        check_partition_name(name)


def test_partition_error_is_a_value_error():
    """PartitionError is a ValueError too, as SelectorError is."""
    assert issubclass(cloudsync.PartitionError, ValueError)


def test_partition_path_encodes_the_name_as_one_segment():
    """The partition is one percent-encoded path segment under `_partition`."""
    assert partition_path("/db", "a/b c") == "/db/_partition/a%2Fb%20c"


def test_partition_handle_does_no_io():
    """`db.partition(name)` makes a handle without a request (no server at this address)."""
    with cloudsync.Client("http://127.0.0.1:9", timeout=(0.5, 0.5)) as client:
        part = client.database("db").partition("p")
    assert (part.name, part.path, repr(part)) == ("p", "/db/_partition/p", "Partition('db', 'p')")
