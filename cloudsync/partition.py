"""One partition of a partitioned database (IBM Cloudant, CouchDB 3): its info,
`_all_docs`, Mango queries and query plans, read under `/{db}/_partition/{name}/`.

A partitioned database keeps the documents of one partition together; its ids are
`partition:docid`. A query of one partition reads only that partition, which is what
makes it cheap on a cluster. The reads reuse [Database][cloudsync.Database]'s paging, with
the partition's path as their base.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._paths import segment
from .errors import PartitionError

if TYPE_CHECKING:
    from .database import Database

__all__ = ["Partition", "check_partition_name", "check_partitioned_id", "partition_path"]

_UNSET: Any = object()
_RESERVED_PREFIXES = ("_design/", "_local/")


def check_partition_name(name: Any) -> str:
    """`name` if it can name a partition: a non-empty `str`, no leading `_`, no `:`.

    Args:
        name: The partition name.

    Returns:
        The name.

    Raises:
        PartitionError: It cannot.
    """
    if not isinstance(name, str) or not name:
        raise PartitionError(f"a partition name must be a non-empty str, not {name!r}")
    if name.startswith("_"):
        raise PartitionError(f"a partition name must not start with '_': {name!r}")
    if ":" in name:
        raise PartitionError(f"a partition name must not contain ':': {name!r}")
    return name


def check_partitioned_id(doc_id: Any) -> None:
    """Check an id for a partitioned database: `partition:docid` (design and local
    documents excepted), as the server will.

    Args:
        doc_id: The document id.

    Raises:
        PartitionError: It is not `partition:docid` with a valid partition and a
            non-empty rest.
    """
    if not isinstance(doc_id, str) or doc_id.startswith(_RESERVED_PREFIXES):
        return  # not a partition question: the usual id checks answer it
    partition, colon, rest = doc_id.partition(":")
    if not colon or not rest:
        raise PartitionError(f"a partitioned database needs ids of the form 'partition:docid', not {doc_id!r}")
    check_partition_name(partition)


class Partition:
    """A handle on partition `name` of a partitioned database; get one from
    [`Database.partition()`][cloudsync.Database.partition]. Creating one does no I/O.

    Args:
        database: The database.
        name: The partition's name.
        reads: The database handle whose reads go to this partition (internal:
            `Database.partition()` makes it).

    Raises:
        PartitionError: `name` is not a valid partition name.
    """

    def __init__(self, database: Database, name: str, reads: Database) -> None:
        self.database = database
        self.name = check_partition_name(name)
        self.path = partition_path(database.path, name)
        """URL path of the partition, percent-encoded."""
        self._reads = reads

    def __repr__(self) -> str:
        return f"Partition({self.database.name!r}, {self.name!r})"

    def info(self) -> dict[str, Any]:
        """The partition's information: `doc_count`, `doc_del_count`, `sizes`.

        Returns:
            The server's answer.

        Raises:
            BadRequest: The database is not partitioned.
        """
        return self._reads.info()

    def all_docs(
        self,
        *,
        include_docs: bool = False,
        keys: Sequence[str] | None = None,
        startkey: Any = _UNSET,
        endkey: Any = _UNSET,
        descending: bool = False,
        inclusive_end: bool = True,
        conflicts: bool = False,
        limit: int | None = None,
        skip: int = 0,
        page_size: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Rows of the partition's `_all_docs`, fetched a page at a time; the parameters
        are [`Database.all_docs()`][cloudsync.Database.all_docs]'s. The server keeps a
        range inside the partition.

        Args:
            include_docs: Add each document (`doc`).
            keys: Only these ids (each `name:...`), the rows in their order.
            startkey: The first id of the range.
            endkey: The last id of the range.
            descending: Rows in descending id order.
            inclusive_end: Include a row whose id is `endkey`.
            conflicts: With `include_docs`, add each document's `_conflicts`.
            limit: At most this many rows in all.
            skip: Skip this many rows first.
            page_size: Rows (or keys) per request.

        Returns:
            An iterator of rows (`{"id", "key", "value", "doc"?}`).

        Raises:
            PartitionError: A key is not an id of this partition.
        """
        if keys is not None:
            keys = list(keys)
            outside = [k for k in keys if not (isinstance(k, str) and k.startswith(f"{self.name}:"))]
            if outside:
                raise PartitionError(f"keys of partition {self.name!r} must start with {self.name + ':'!r}: "
                                     f"{outside[:3]!r}")
        ranges = {name: value for name, value in (("startkey", startkey), ("endkey", endkey)) if value is not _UNSET}
        return self._reads.all_docs(
            include_docs=include_docs, keys=keys, descending=descending, inclusive_end=inclusive_end,
            conflicts=conflicts, limit=limit, skip=skip, page_size=page_size, **ranges,
        )

    def query(
        self,
        selector: Mapping[str, Any],
        *,
        fields: Sequence[str] | None = None,
        sort: Sequence[Any] | None = None,
        limit: int | None = None,
        skip: int = 0,
        use_index: str | Sequence[str] | None = None,
        conflicts: bool = False,
        page_size: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Documents of this partition matching a Mango selector (`_find`), fetched a page
        at a time by bookmark; the parameters are [`Database.query()`][cloudsync.Database.query]'s.
        Only partitioned indexes serve it.

        Args:
            selector: The Mango selector.
            fields: Return only these fields of each document.
            sort: Sort order, e.g. `["total"]`; needs a partitioned index on those fields.
            limit: At most this many documents in all.
            skip: Skip this many matching documents first.
            use_index: The index to use: a design document, or `[ddoc, name]`.
            conflicts: Add each document's `_conflicts`.
            page_size: Documents per request.

        Returns:
            An iterator of documents.

        Raises:
            BadRequest: The server refused the query (`error` `"no_usable_index"` for a
                sort no partitioned index serves).
        """
        return self._reads.query(selector, fields=fields, sort=sort, limit=limit, skip=skip, use_index=use_index,
                                 conflicts=conflicts, page_size=page_size)

    def explain(
        self,
        selector: Mapping[str, Any],
        *,
        fields: Sequence[str] | None = None,
        sort: Sequence[Any] | None = None,
        limit: int | None = None,
        skip: int = 0,
        use_index: str | Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """How the server would run [`query()`][cloudsync.Partition.query] (`_explain`).

        Args:
            selector: The Mango selector.
            fields: Return only these fields of each document.
            sort: Sort order.
            limit: At most this many documents.
            skip: Skip this many matching documents first.
            use_index: The index to use: a design document, or `[ddoc, name]`.

        Returns:
            The server's plan: the chosen index and more.
        """
        return self._reads.explain(selector, fields=fields, sort=sort, limit=limit, skip=skip, use_index=use_index)


    def view(
        self,
        ddoc: str,
        name: str,
        *,
        key: Any = _UNSET,
        keys: Sequence[Any] | None = None,
        startkey: Any = _UNSET,
        endkey: Any = _UNSET,
        reduce: bool | None = None,
        group: bool = False,
        group_level: int | None = None,
        include_docs: bool = False,
        descending: bool = False,
        inclusive_end: bool = True,
        limit: int | None = None,
        skip: int = 0,
        page_size: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Rows of a partitioned view over this partition only
        (`/{db}/_partition/{p}/_design/{ddoc}/_view/{name}`, IBM Cloudant and CouchDB 3;
        the embedded server has no views); the parameters are
        [`Database.view()`][cloudsync.Database.view]'s.

        Args:
            ddoc: The design document (with or without `_design/`); a partitioned one.
            name: The view's name.
            key: Only rows with this key.
            keys: Only rows with these keys, in their order.
            startkey: The first key of the range.
            endkey: The last key of the range.
            reduce: Run the view's reduce function; `None` for the server's default.
            group: Reduce by distinct key.
            group_level: Reduce by the first this many elements of array keys.
            include_docs: Add each row's document (`doc`).
            descending: Rows in descending key order.
            inclusive_end: Include rows whose key is `endkey`.
            limit: At most this many rows in all.
            skip: Skip this many rows first.
            page_size: Rows (or keys) per request.

        Returns:
            An iterator of rows (`{"id", "key", "value", "doc"?}`).
        """
        ranges = {n: v for n, v in (("key", key), ("startkey", startkey), ("endkey", endkey)) if v is not _UNSET}
        return self._reads.view(
            ddoc, name, keys=keys, reduce=reduce, group=group, group_level=group_level, include_docs=include_docs,
            descending=descending, inclusive_end=inclusive_end, limit=limit, skip=skip, page_size=page_size,
            **ranges,
        )


def partition_path(db_path: str, name: str) -> str:
    """The URL path of partition `name` of the database at `db_path`.

    Args:
        db_path: The database's path, percent-encoded.
        name: The partition's name.

    Returns:
        `{db_path}/_partition/{name}`, the name percent-encoded.

    Raises:
        PartitionError: `name` is not a valid partition name.
    """
    return f"{db_path}/_partition/{segment(check_partition_name(name))}"
