"""Partitioned databases, as CouchDB 3 has them: the rules for partition names and for
document ids (`partition:docid`), and a partition as a range of ids.

A partition is every document whose id starts with `partition:`. Ids sort by their bytes,
and `;` follows `:`, so a partition is the id range `["p:", "p;")`: reading one is a range
scan of the primary key, never a filter over the whole database.
"""

from __future__ import annotations

from typing import Any

from .errors import CouchError, RowError

__all__ = ["PARTITION_SQL", "check_partitioned_id", "id_range", "validate_partition"]

PARTITION_SQL = "substr(id, 1, instr(id, ':') - 1)"
"""The partition of a stored document id, as SQL (the leading column of partitioned
Mango indexes; queries must spell it exactly so for SQLite to use those indexes)."""


def validate_partition(partition: Any) -> str:
    """`partition` if it is a valid partition name (CouchDB's `couch_partition:validate_partition`).

    Raises:
        CouchError: 400 `illegal_partition`.
    """
    if not isinstance(partition, str):
        raise CouchError(400, "illegal_partition", "Partition must be a string")
    if not partition:
        raise CouchError(400, "illegal_partition", "Partition must not be empty")
    if partition.startswith("_"):
        raise CouchError(400, "illegal_partition", "Partition must not start with an underscore")
    if ":" in partition:
        raise CouchError(400, "illegal_partition", "Partition must not contain a colon")
    return partition


def check_partitioned_id(doc_id: str) -> None:
    """Check a document id written to a partitioned database, which CouchDB's own id
    rules passed already: `partition:docid`, except design and local documents.

    Raises:
        RowError: `illegal_docid` (no partition, an empty or `_`-prefixed rest) or
            `illegal_partition` (an empty partition), CouchDB's errors and reasons.
    """
    if doc_id.startswith(("_design/", "_local/")):
        return
    partition, colon, rest = doc_id.partition(":")
    if not colon:
        raise RowError("illegal_docid", "Doc id must be of form partition:id")
    try:
        validate_partition(partition)
    except CouchError as exc:
        raise RowError(exc.error, exc.reason) from None
    if not rest:
        raise RowError("illegal_docid", "Document id must not be empty")
    if rest.startswith("_"):
        raise RowError("illegal_docid", "Only reserved document ids may start with underscore.")


def id_range(partition: str) -> tuple[str, str]:
    """The ids of `partition`: at least the first, below the second."""
    return f"{partition}:", f"{partition};"
