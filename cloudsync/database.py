"""One database: documents, bulk writes, all_docs, Mango queries, indexes, views."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Literal, overload

from . import _json
from ._http import HTTP
from ._http.feeds import FeedEndpoint
from ._paging import find_pages, keyed_rows
from ._paths import attachment_path, db_path, doc_path, segment, validate_doc_id
from ._retry import RetryPolicy
from .bulk import DEFAULT_BATCH_SIZE, BulkWrite, caller
from .bulk import check_doc as _check_doc
from .changes import ChangesIterator
from .errors import Conflict, NotFound, PreconditionFailed
from .find_page import FindPage
from .models import BulkResult
from .partition import Partition, check_partitioned_id, partition_path
from .security import check_security

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from 3.11; annotations only, never at run time

    from ._reader import SubscriptionState
    from ._retry import ReconnectPolicy, RetryPolicy
    from .checkpoint import CheckpointStore
    from .live_query import LiveQuery
    from .subscription import Subscription
    from .subscription_options import SubscriptionOptions
    from .transports import Transport
    from .writer import Writer

__all__ = ["Database"]

Doc = dict[str, Any]
DEFAULT_PAGE_SIZE = 1000
_UNSET: Any = object()


def _encode_keys(params: dict[str, Any], **keys: Any) -> None:
    """Add JSON-encoded key parameters (CouchDB takes view keys as JSON)."""
    for name, value in keys.items():
        if value is not _UNSET:
            params[name] = _json.dumps(value).decode()


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _check_page_size(page_size: int, name: str = "page_size") -> None:
    if not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"{name} must be a positive int")


def _check_bookmark(bookmark: Any) -> None:
    if bookmark is not None and not isinstance(bookmark, str):
        raise TypeError(f"bookmark must be a str (a FindPage.bookmark), not {type(bookmark).__name__}")


class Database:
    """A handle on one database. Get one from [`Client.database()`][cloudsync.Client.database] or
    [`Client.create_database()`][cloudsync.Client.create_database]; creating a handle does no I/O.

    Args:
        http: The client's HTTP layer (internal: the client passes its own).
        name: The database's name.
        scope: Internal: the path that `info()`, `all_docs()`, `query()` and `explain()`
            read under, the database's own by default (a [Partition][cloudsync.Partition]'s).
    """

    def __init__(self, http: HTTP, name: str, *, scope: str | None = None) -> None:
        self._http = http
        self.name = name
        self.path = db_path(name)
        """URL path of the database, percent-encoded."""
        self._scope = scope or self.path
        self.partitioned: bool | None = None
        """Whether the database is partitioned, once known (from `create_database()` or
        `info()`); when true, ids are checked to be `partition:docid` before writes."""

    def __repr__(self) -> str:
        return f"Database({self.name!r})"

    @property
    def url(self) -> str:
        """The database's URL, without credentials."""
        return self._http.base_url + self.path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Database) and (self._http, self.name) == (other._http, other.name)

    def __hash__(self) -> int:
        return hash((id(self._http), self.name))

    # -- the database ---------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Database information: `doc_count`, `update_seq`, sizes, `props` (`partitioned`)."""
        answer = self._http.request("GET", self._scope)
        if isinstance(answer.get("props"), dict):
            self.partitioned = answer["props"].get("partitioned") is True
        return answer

    def partition(self, name: str) -> Partition:
        """A handle on partition `name` of this partitioned database (no I/O).

        Args:
            name: The partition: a non-empty `str`, no leading `_`, no `:`.

        Returns:
            The [Partition][cloudsync.Partition].

        Raises:
            PartitionError: `name` cannot name a partition.
        """
        return Partition(self, name, Database(self._http, self.name, scope=partition_path(self.path, name)))

    def _check_id(self, doc_id: Any) -> None:
        if self.partitioned:
            check_partitioned_id(doc_id)

    def exists(self) -> bool:
        """Whether the database exists."""
        try:
            self._http.request("HEAD", self.path)
        except NotFound:
            return False
        return True

    def security(self) -> dict[str, Any]:
        """The database's security object (`GET /{db}/_security`).

        Returns:
            `{"admins": {"names": [...], "roles": [...]}, "members": {...}}`; what a
                server answers for a database never given one varies (CouchDB 3:
                admins only, as `{"admins": {"roles": ["_admin"]}, "members":
                {"roles": ["_admin"]}}`; pouchdb-server: `{}`).

        Raises:
            NotFound: There is no such database.
            Unauthorized: The credentials are missing or wrong.
            Forbidden: The user may not read it (CouchDB: database admins only).
        """
        return self._http.request("GET", f"{self.path}/_security")

    def set_security(self, security: Mapping[str, Any]) -> None:
        """Replace the database's security object (`PUT /{db}/_security`).

        `admins` may change the design documents and the security object; `members`
        may read and write documents. A `members` section with no names and no roles
        makes the database public, as in CouchDB. Other top-level members (Cloudant's
        `"cloudant"` API-key permissions) are sent as given.

        Args:
            security: `{"admins": {"names": [...], "roles": [...]}, "members":
                {"names": [...], "roles": [...]}}`.

        Raises:
            TypeError: `security` or a section is not a mapping (nothing is sent).
            ValueError: A section has other members than `names` and `roles`, or they
                are not lists of strings (nothing is sent).
            Forbidden: The user is not an admin of the database.
            BadRequest: The server refused the object.
        """
        self._http.request("PUT", f"{self.path}/_security", json=check_security(security))

    def create_if_missing(self) -> bool:
        """Create the database unless it exists.

        Returns:
            Whether this call created it.
        """
        try:
            self._http.request("PUT", self.path)
        except PreconditionFailed:
            return False
        return True

    # -- documents --------------------------------------------------------------------
    def create(self, doc: Mapping[str, Any]) -> Doc:
        """Store a new document.

        Without an `_id` one is made on the client, and the document is written with
        `PUT`: a create that is retried after a lost answer can never make two documents.

        Args:
            doc: The document, without `_rev`.

        Returns:
            A copy of the document with its `_id` and `_rev`.

        Raises:
            Conflict: A document with the given `_id` exists.
            ValueError: `doc` has a `_rev` (use [`update()`][cloudsync.Database.update]).
        """
        _check_doc(doc)
        if "_rev" in doc:
            raise ValueError("create() takes a new document; use update() for one with a _rev")
        new = dict(doc)
        generated = "_id" not in new
        if generated:
            new["_id"] = uuid.uuid4().hex
        self._check_id(new["_id"])
        try:
            answer = self._http.request("PUT", doc_path(self.path, new["_id"]), json=new)
        except Conflict:
            if not generated:
                raise
            # Nobody else can know a fresh uuid4: the conflict is our own earlier attempt
            # whose answer was lost before a retry. Report that write.
            stored = self.get(new["_id"])
            new["_rev"] = stored["_rev"]
            return new
        new["_rev"] = answer["rev"]
        return new

    def get(
        self,
        doc_id: str,
        rev: str | None = None,
        *,
        conflicts: bool = False,
        revs_info: bool = False,
        latest: bool = False,
        attachments: bool = False,
    ) -> Doc:
        """A document.

        Args:
            doc_id: The document's id.
            rev: Read this revision instead of the current one.
            conflicts: Add `_conflicts`: the losing leaf revisions, if any.
            revs_info: Add `_revs_info`: the revision history and what is available of it.
            latest: With `rev`, read the latest leaf revision descended from it.
            attachments: Answer each attachment's content inline, base64 in its `data`
                member, instead of a stub (for large content use
                [`get_attachment()`][cloudsync.Database.get_attachment]).

        Returns:
            The document.

        Raises:
            NotFound: There is no such document (or revision), or it is deleted.
        """
        params: dict[str, str] = {}
        if attachments:
            params["attachments"] = "true"
        if rev is not None:
            params["rev"] = rev
        if conflicts:
            params["conflicts"] = "true"
        if revs_info:
            params["revs_info"] = "true"
        if latest:
            params["latest"] = "true"
        return self._http.request("GET", doc_path(self.path, doc_id), params=params or None)

    def update(self, doc: Mapping[str, Any]) -> Doc:
        """Write a new revision of a document.

        Args:
            doc: The document with its `_id` and the `_rev` it replaces.

        Returns:
            A copy of the document with its new `_rev`.

        Raises:
            Conflict: `_rev` is not the current revision.
            ValueError: `doc` has no `_id` or no `_rev`.
        """
        _check_doc(doc)
        if "_id" not in doc or "_rev" not in doc:
            raise ValueError("update() needs a document with _id and _rev")
        self._check_id(doc["_id"])
        new = dict(doc)
        answer = self._http.request("PUT", doc_path(self.path, new["_id"]), json=new)
        new["_rev"] = answer["rev"]
        return new

    def delete(self, doc: Mapping[str, Any] | str, rev: str | None = None) -> str:
        """Delete a document.

        Args:
            doc: The document (a dict with `_id` and `_rev`), or its id.
            rev: The current revision, when `doc` is an id (or has no `_rev`).

        Returns:
            The revision of the deletion (the tombstone).

        Raises:
            Conflict: `rev` is not the current revision.
            ValueError: No id or no revision given.
        """
        if isinstance(doc, Mapping):
            doc_id, rev = doc.get("_id"), doc.get("_rev", rev)
        else:
            doc_id = doc
        if doc_id is None or rev is None:
            raise ValueError("delete() needs a document id and its current rev")
        answer = self._http.request("DELETE", doc_path(self.path, doc_id), params={"rev": rev})
        return answer["rev"]

    # -- attachments ----------------------------------------------------------------------

    def put_attachment(
        self,
        doc: Mapping[str, Any] | str,
        name: str,
        data: bytes | str | IO[bytes],
        content_type: str = "application/octet-stream",
        *,
        rev: str | None = None,
    ) -> str:
        """Add or replace attachment `name` of a document; return the new revision.

        Args:
            doc: the document id, or the document itself (its `_rev` is used unless
                `rev` is given).
            name: the attachment name; it may contain `/`.
            data: the content: bytes, a str (sent as UTF-8), or a binary file object,
                which is streamed, never read whole (and then not retried on failure).
            content_type: the MIME type stored and served with the content.
            rev: the current revision of the document; `None` creates the document
                when it does not exist.

        Returns:
            The document's new revision.

        Raises:
            Conflict: `rev` is not the current revision (or is missing for an
                existing document).
            HTTPError: any other refusal, e.g. 413 for content over the server's limit.
            TypeError: `data` is not bytes, a str or a binary file object.
        """
        if isinstance(doc, Mapping):
            doc_id, rev = doc.get("_id"), rev if rev is not None else doc.get("_rev")
            if not isinstance(doc_id, str):
                raise ValueError("put_attachment() needs a document with an _id")
        else:
            doc_id = doc
        body = data.encode() if isinstance(data, str) else data
        streamed = not isinstance(body, (bytes, bytearray, memoryview))
        # Anything else would reach the transport: None as an empty body, a text file as text.
        if streamed and (not hasattr(body, "read") or isinstance(body, io.TextIOBase)):
            raise TypeError(f"attachment data must be bytes, str or a binary file, not {type(data).__name__}")
        answer = self._http.request(
            "PUT", attachment_path(self.path, doc_id, name), params={"rev": rev} if rev else None,
            data=body, headers={"Content-Type": content_type},
            # A file is consumed by the first try: it cannot be sent again.
            retry=RetryPolicy(attempts=1) if streamed else None,
        )
        return answer["rev"]

    @overload
    def get_attachment(self, doc_id: str, name: str, *, rev: str | None = ..., file: None = ...) -> bytes: ...

    @overload
    def get_attachment(self, doc_id: str, name: str, *, rev: str | None = ..., file: IO[bytes]) -> int: ...

    def get_attachment(
        self, doc_id: str, name: str, *, rev: str | None = None, file: IO[bytes] | None = None
    ) -> bytes | int:
        """The content of attachment `name` of a document.

        Args:
            doc_id: the document id.
            name: the attachment name.
            rev: read this revision instead of the current one.
            file: a binary file object to stream the content into, chunk by chunk,
                instead of returning it.

        Returns:
            The content as bytes, or, with `file`, the number of bytes written to it.

        Raises:
            NotFound: no such document, revision or attachment.
        """
        chunks = self._http.stream(
            "GET", attachment_path(self.path, doc_id, name), params={"rev": rev} if rev else None,
            headers={"Accept": "*/*"},
        )
        if file is None:
            return b"".join(chunks)
        written = 0
        for chunk in chunks:
            file.write(chunk)
            written += len(chunk)
        return written

    def delete_attachment(self, doc_id: str, name: str, rev: str) -> str:
        """Remove attachment `name` from revision `rev` of a document.

        Args:
            doc_id: the document id.
            name: the attachment name.
            rev: the document's current revision.

        Returns:
            The document's new revision.

        Raises:
            NotFound: no such attachment (pouchdb-server: or document).
            Conflict: `rev` is not the current revision; CouchDB and the embedded
                server also answer a `rev` the document lacks (a missing document
                included) with 409.
        """
        answer = self._http.request("DELETE", attachment_path(self.path, doc_id, name), params={"rev": rev})
        return answer["rev"]

    def bulk(
        self,
        docs: Iterable[Mapping[str, Any]],
        *,
        new_edits: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> BulkWrite:
        """Write many documents, `batch_size` per `_bulk_docs` request, streaming.

        Lazy: each batch is read from `docs` and sent when its first result is read, so
        a generator of any length is written in bounded memory. Read the results to the
        end (a dropped, unread `BulkWrite` wrote nothing, and warns):

        ```python
        for result in db.bulk(docs):      # one BulkResult per document, in order
            if not result.ok: ...
        failures = db.bulk(docs).run()    # or: write all, keep only the failures
        ```

        A row that failed (e.g. `conflict`) is reported in its result, not raised. A
        request that fails raises; the batches before it are written. Like any `POST`,
        a batch is retried only when it certainly did not reach the server (or on a 429).

        Args:
            docs: The documents, any iterable (a list, a generator); those without `_id`
                get one made on the client.
            new_edits: `False` stores the revisions as given, without conflict checks
                (as replication does).
            batch_size: Documents per request.

        Returns:
            A [BulkWrite][cloudsync.BulkWrite]: an iterator of one
                [BulkResult][cloudsync.BulkResult] per document, in order.

        Raises:
            ValueError: `batch_size` is not a positive int.
            TypeError: (while reading) a document is not a mapping; its batch is not sent.
        """
        return BulkWrite(self._send_bulk, docs, batch_size=batch_size, new_edits=new_edits, origin=caller())

    def _send_bulk(self, batch: list[Doc], new_edits: bool) -> Any:
        for doc in batch:
            self._check_id(doc["_id"])
        body: dict[str, Any] = {"docs": batch}
        if not new_edits:
            body["new_edits"] = False
        # Storing given revisions again changes nothing: such a write is safe to retry.
        return self._http.request("POST", f"{self.path}/_bulk_docs", json=body, idempotent=not new_edits)

    # -- revisions (what replication reads) -------------------------------------------
    def revs_diff(self, revs: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """Which of these revisions the database lacks (`_revs_diff`).

        Args:
            revs: Document id to the revisions asked about.

        Returns:
            Only the documents with missing revisions: id to `{"missing": [...],
                "possible_ancestors": [...]}` (the second member only when there are some).
        """
        body = {doc_id: list(doc_revs) for doc_id, doc_revs in revs.items()}
        return self._http.request("POST", f"{self.path}/_revs_diff", json=body, idempotent=True)

    def bulk_get(
        self, docs: Sequence[Mapping[str, Any]], *, revs: bool = False, latest: bool = False,
        attachments: bool = False,
    ) -> list[dict[str, Any]]:
        """Many document revisions in one request (`_bulk_get`).

        Args:
            docs: What to read: `{"id", "rev"?, "atts_since"?}` each.
            revs: Add each revision's `_revisions` history.
            latest: Answer the latest leaf descended from each `rev` instead.
            attachments: Answer attachment content inline (base64), past what each
                item's `atts_since` says the reader has.

        Returns:
            The `results` rows: `{"id", "docs": [{"ok": doc} | {"error": ...} | {"missing": rev}]}`.

        Raises:
            NotFound: The server has no `_bulk_get` (or no such database).
        """
        params = {name: "true" for name, wanted in
                  (("revs", revs), ("latest", latest), ("attachments", attachments)) if wanted}
        answer = self._http.request("POST", f"{self.path}/_bulk_get", params=params or None,
                                    json={"docs": list(docs)}, idempotent=True)
        return answer["results"]

    def open_revs(
        self, doc_id: str, revs: Sequence[str] | str = "all", *, history: bool = False, latest: bool = False,
        attachments: bool = False, atts_since: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Some or all leaf revisions of one document (`GET doc?open_revs=...`).

        Args:
            doc_id: The document's id.
            revs: The revisions, or `"all"` for every leaf.
            history: Add each revision's `_revisions` history.
            latest: Answer the latest leaf descended from each rev instead.
            attachments: Answer attachment content inline (base64).
            atts_since: Revisions the reader has: content of attachments no newer than
                them comes as stubs.

        Returns:
            One entry per revision: `{"ok": doc}` or `{"missing": rev}`.

        Raises:
            NotFound: There is no such document (with `"all"`).
        """
        params: dict[str, str] = {"open_revs": revs if isinstance(revs, str) else _json.dumps(list(revs)).decode()}
        for name, wanted in (("revs", history), ("latest", latest), ("attachments", attachments)):
            if wanted:
                params[name] = "true"
        if atts_since is not None:
            params["atts_since"] = _json.dumps(list(atts_since)).decode()
        return self._http.request("GET", doc_path(self.path, doc_id), params=params)

    # -- reading many ---------------------------------------------------------------
    def all_docs(
        self,
        *,
        include_docs: bool = False,
        key: str | None = None,
        keys: Sequence[str] | None = None,
        startkey: Any = _UNSET,
        endkey: Any = _UNSET,
        descending: bool = False,
        inclusive_end: bool = True,
        conflicts: bool = False,
        limit: int | None = None,
        skip: int = 0,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Rows of `_all_docs` (`{"id", "key", "value", "doc"?}`), fetched a page at a time.

        Args:
            include_docs: Add each document (`doc`).
            key: Only this id: one row, or none when there is no such document.
            keys: Only these ids, the rows in their order (missing ones as
                `{"key", "error": "not_found"}`), `page_size` keys per request.
            startkey: The first id of the range.
            endkey: The last id of the range.
            descending: Rows in descending id order.
            inclusive_end: Include a row whose id is `endkey`.
            conflicts: With `include_docs`, add each document's `_conflicts`.
            limit: At most this many rows in all.
            skip: Skip this many rows first.
            page_size: Rows (or keys) per request.

        Returns:
            An iterator of rows; each page is requested when the previous one is used up.

        Raises:
            ValueError: `key` is given with `keys`, `startkey` or `endkey`.
        """
        _check_page_size(page_size)
        if key is not None and (keys is not None or startkey is not _UNSET or endkey is not _UNSET):
            raise ValueError("all_docs() takes key alone, without keys, startkey or endkey")
        params: dict[str, Any] = {"include_docs": _bool(include_docs)}
        if conflicts:
            params["conflicts"] = "true"
        if keys is not None:
            return self._rows_for_keys(f"{self._scope}/_all_docs", params, list(keys), page_size, limit)
        if descending:
            params["descending"] = "true"
        if not inclusive_end:
            params["inclusive_end"] = "false"
        if skip:
            params["skip"] = skip
        _encode_keys(params, startkey=startkey, endkey=endkey, key=_UNSET if key is None else key)
        path = f"{self._scope}/_all_docs"
        return keyed_rows(
            lambda p: self._http.request("GET", path, params=p), params, page_size=page_size, limit=limit
        )

    def _rows_for_keys(
        self, path: str, params: dict[str, Any], keys: list[Any], page_size: int, limit: int | None
    ) -> Iterator[dict[str, Any]]:
        def rows() -> Iterator[dict[str, Any]]:
            wanted = keys if limit is None else keys[:limit]
            for start in range(0, len(wanted), page_size):
                chunk = wanted[start : start + page_size]
                answer = self._http.request(
                    "POST", path, params=params, json={"keys": chunk}, idempotent=True
                )
                yield from answer.get("rows", [])

        return rows()

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
        page_size: int = DEFAULT_PAGE_SIZE,
        bookmark: str | None = None,
    ) -> Iterator[Doc]:
        """Documents matching a Mango selector (`_find`), fetched a page at a time.

        Pages follow the server's bookmarks. Servers that send none (pouchdb-server) are
        paged by `skip`; either way every matching document is returned once for data
        that does not change while paging.

        Args:
            selector: The Mango selector, e.g. `{"type": "order", "total": {"$gt": 10}}`.
            fields: Return only these fields of each document.
            sort: Sort order, e.g. `["total"]` or `[{"total": "desc"}]`.
            limit: At most this many documents in all.
            skip: Skip this many matching documents first.
            use_index: The index to use: a design document, or `[ddoc, name]`.
            conflicts: Add each document's `_conflicts`.
            page_size: Documents per request.
            bookmark: Start where the page of the same query that sent this bookmark
                (a kept [FindPage][cloudsync.FindPage] `bookmark`) left off; `skip`
                then counts from there.

        Returns:
            An iterator of documents.

        Raises:
            TypeError: `selector` is not a mapping, or `bookmark` not a str.
            InvalidResponse: (while reading) a query started from `bookmark` got no
                bookmark to go on with.
        """
        body = self._find_body(selector, fields, sort, skip, use_index, conflicts)
        _check_page_size(page_size)
        _check_bookmark(bookmark)
        path = f"{self._scope}/_find"
        return find_pages(
            lambda b: self._http.request("POST", path, json=b, idempotent=True),
            body,
            page_size=page_size,
            limit=limit,
            bookmark=bookmark,
        )

    def query_page(
        self,
        selector: Mapping[str, Any],
        *,
        fields: Sequence[str] | None = None,
        sort: Sequence[Any] | None = None,
        limit: int = 25,
        skip: int = 0,
        use_index: str | Sequence[str] | None = None,
        conflicts: bool = False,
        bookmark: str | None = None,
        execution_stats: bool = False,
    ) -> FindPage:
        """One page of a Mango query (`_find`): one request, its documents, the bookmark
        of the next page and, if asked for, the server's execution statistics.

        For pages served one at a time (a web API's "next page" token), or statistics:

        ```python
        page = db.query_page({"type": "order"}, limit=50, bookmark=token)
        token = page.bookmark  # keep it; a page shorter than limit is the last
        ```

        Args:
            selector: The Mango selector.
            fields: Return only these fields of each document.
            sort: Sort order.
            limit: Documents in the page (CouchDB's default is 25).
            skip: Skip this many matching documents first (from `bookmark`, if given).
            use_index: The index to use: a design document, or `[ddoc, name]`.
            conflicts: Add each document's `_conflicts`.
            bookmark: Start after the page this bookmark came from.
            execution_stats: Ask for the server's execution statistics.

        Returns:
            The page: a [FindPage][cloudsync.FindPage].

        Raises:
            TypeError: `selector` is not a mapping, or `bookmark` not a str.
            ValueError: `limit` is not a positive int.
            BadRequest: The server refused the query or the bookmark.
        """
        body = self._find_body(selector, fields, sort, skip, use_index, conflicts)
        _check_page_size(limit, "limit")
        _check_bookmark(bookmark)
        body["limit"] = limit
        if bookmark is not None:
            body["bookmark"] = bookmark
        if execution_stats:
            body["execution_stats"] = True
        answer = self._http.request("POST", f"{self._scope}/_find", json=body, idempotent=True)
        return FindPage.from_answer(answer)

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
        """How the server would run [`query()`][cloudsync.Database.query] (`_explain`).

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
        body = self._find_body(selector, fields, sort, skip, use_index, False)
        if limit is not None:
            body["limit"] = limit
        return self._http.request("POST", f"{self._scope}/_explain", json=body, idempotent=True)

    @staticmethod
    def _find_body(
        selector: Mapping[str, Any],
        fields: Sequence[str] | None,
        sort: Sequence[Any] | None,
        skip: int,
        use_index: str | Sequence[str] | None,
        conflicts: bool,
    ) -> dict[str, Any]:
        if not isinstance(selector, Mapping):
            raise TypeError(f"selector must be a mapping, not {type(selector).__name__}")
        body: dict[str, Any] = {"selector": dict(selector)}
        if fields is not None:
            body["fields"] = list(fields)
        if sort is not None:
            body["sort"] = list(sort)
        if skip:
            body["skip"] = skip
        if use_index is not None:
            body["use_index"] = use_index if isinstance(use_index, str) else list(use_index)
        if conflicts:
            body["conflicts"] = True
        return body

    # -- indexes --------------------------------------------------------------------
    def create_index(
        self,
        fields: Sequence[Any],
        *,
        name: str | None = None,
        ddoc: str | None = None,
        partial_filter: Mapping[str, Any] | None = None,
        type: str = "json",
    ) -> dict[str, Any]:
        """Create a Mango index.

        Args:
            fields: The indexed fields: names, or `{name: "asc" | "desc"}`.
            name: The index's name; the server makes one up without it.
            ddoc: The design document to put it in (with or without `_design/`).
            partial_filter: A selector a document must match to be indexed.
            type: The index type (`"json"`).

        Returns:
            `{"result": "created" | "exists", "id", "name"}`.

        Raises:
            ValueError: `fields` is empty or a `str`.
        """
        if isinstance(fields, str) or not fields:
            raise ValueError("fields must be a non-empty list of field names or {field: order}")
        index: dict[str, Any] = {"fields": list(fields)}
        if partial_filter is not None:
            index["partial_filter_selector"] = dict(partial_filter)
        body: dict[str, Any] = {"index": index, "type": type}
        if name is not None:
            body["name"] = name
        if ddoc is not None:
            body["ddoc"] = ddoc.removeprefix("_design/")
        return self._http.request("POST", f"{self.path}/_index", json=body, idempotent=True)

    def indexes(self) -> list[dict[str, Any]]:
        """Every index of the database, `_all_docs` included."""
        return self._http.request("GET", f"{self.path}/_index")["indexes"]

    def delete_index(self, ddoc: str, name: str, *, type: str = "json") -> None:
        """Delete a Mango index.

        Args:
            ddoc: Its design document (with or without `_design/`).
            name: The index's name.
            type: The index type (`"json"`).

        Raises:
            NotFound: There is no such index.
        """
        validate_doc_id(ddoc)
        # The design id as one encoded segment: accepted by CouchDB 3 and pouchdb-server alike.
        design = segment("_design/" + ddoc.removeprefix("_design/"))
        self._http.request("DELETE", f"{self.path}/_index/{design}/{segment(type)}/{segment(name)}")

    # -- views ------------------------------------------------------------------------
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
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Rows of a view, fetched a page at a time (by `startkey`/`startkey_docid`).

        Args:
            ddoc: The design document (with or without `_design/`).
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
        _check_page_size(page_size)
        design = ddoc.removeprefix("_design/")
        path = f"{doc_path(self._scope, '_design/' + design)}/_view/{segment(name)}"
        params: dict[str, Any] = {}
        if reduce is not None:
            params["reduce"] = _bool(reduce)
        if group:
            params["group"] = "true"
        if group_level is not None:
            params["group_level"] = group_level
        if include_docs:
            params["include_docs"] = "true"
        if keys is not None:
            return self._rows_for_keys(path, params, list(keys), page_size, limit)
        if descending:
            params["descending"] = "true"
        if not inclusive_end:
            params["inclusive_end"] = "false"
        if skip:
            params["skip"] = skip
        if key is not _UNSET:
            # key=K is the range [K, K]; as a range it can be paged with startkey_docid.
            startkey = endkey = key
        _encode_keys(params, startkey=startkey, endkey=endkey)
        return keyed_rows(
            lambda p: self._http.request("GET", path, params=p), params, page_size=page_size, limit=limit
        )

    # -- local documents (checkpoints) ------------------------------------------------
    def read_local(self, doc_id: str, *, timeout: Any = None, retry: RetryPolicy | None = None) -> Doc:
        """A `_local/` document (never replicated, no history).

        Args:
            doc_id: Its id, `_local/` included.
            timeout: Seconds, or `(connect, read)`; the client's by default.
            retry: The retry policy for this request; the client's by default.

        Returns:
            The document.

        Raises:
            NotFound: There is no such document.
        """
        return self._http.request("GET", doc_path(self.path, doc_id), timeout=timeout, retry=retry)

    def write_local(
        self, doc_id: str, doc: Mapping[str, Any], *, timeout: Any = None, retry: RetryPolicy | None = None
    ) -> dict[str, Any]:
        """Store a `_local/` document.

        Args:
            doc_id: Its id, `_local/` included.
            doc: The body (with the `_rev` it replaces, if any).
            timeout: Seconds, or `(connect, read)`; the client's by default.
            retry: The retry policy for this request; the client's by default.

        Returns:
            The server's answer (`rev`).

        Raises:
            Conflict: `doc` has a stale `_rev`.
        """
        return self._http.request("PUT", doc_path(self.path, doc_id), json=doc, timeout=timeout, retry=retry)

    # -- moving data --------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        timeout: Any = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send a request to an endpoint of this database that has no method of its own
        (`_bulk_get`, `_revs_diff`...), with the client's auth, retries and errors.

        Args:
            method: The HTTP method.
            path: The path below the database's, such as `"_bulk_get"`, unencoded
                segments joined by `/`; `""` for the database itself.
            params: Query parameters.
            json: The body, encoded as JSON.
            idempotent: Whether the request may be sent twice; by default GET, HEAD, PUT
                and DELETE are.
            timeout: Seconds, or `(connect, read)`; the client's by default.
            retry: The retry policy for this request; the client's by default.

        Returns:
            The answer's JSON body (the headers, for `HEAD`).
        """
        full = f"{self.path}/{'/'.join(segment(part) for part in path.split('/'))}" if path else self.path
        return self._http.request(
            method, full, params=params, json=json, idempotent=idempotent, timeout=timeout, retry=retry
        )

    def writer(
        self,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_pending: int = 10_000,
        on_full: Literal["block", "raise"] = "block",
        put_timeout: float = 60.0,
        close_timeout: float = 60.0,
        on_result: Callable[[BulkResult], Any] | None = None,
        keep_results: bool = False,
        max_errors: int = 10_000,
        retry: RetryPolicy | None = None,
    ) -> Writer:
        """A [Writer][cloudsync.Writer]: put documents one at a time, from any thread; a
        background thread writes them in `_bulk_docs` batches. Its page says more of
        each option.

        Args:
            batch_size: Documents per `_bulk_docs` request.
            flush_interval: Seconds a document may wait for its batch to fill.
            max_pending: Documents held at most (queued and in flight).
            on_full: `"block"` (at most `put_timeout` seconds) or `"raise"` when
                `max_pending` documents wait.
            put_timeout: Seconds `put()` waits for room with `on_full="block"`.
            close_timeout: Seconds `flush()`/`close()` wait by default.
            on_result: Called with each document's [BulkResult][cloudsync.BulkResult].
            keep_results: Keep every result in the writer's `results`.
            max_errors: At most this many failed results kept in its `errors`.
            retry: How batches are retried (a [RetryPolicy][cloudsync.RetryPolicy]).

        Returns:
            The writer, already running: use it as a context manager.
        """
        from .writer import Writer

        return Writer(
            self, batch_size=batch_size, flush_interval=flush_interval, max_pending=max_pending,
            on_full=on_full, put_timeout=put_timeout, close_timeout=close_timeout, on_result=on_result,
            keep_results=keep_results, max_errors=max_errors, retry=retry,
        )

    # -- changes ----------------------------------------------------------------------
    def changes_endpoint(self) -> FeedEndpoint:
        """This database's `_changes` feed as the HTTP layer reaches it, with a connection
        pool of its own: a subscription hands it to its transport.

        Returns:
            The feed's endpoint (internal to cloudsync's HTTP layer).
        """
        return FeedEndpoint(self._http, self.path)

    def changes(
        self,
        *,
        since: Any = None,
        limit: int | None = None,
        include_docs: bool = False,
        selector: Mapping[str, Any] | None = None,
        doc_ids: Sequence[str] | None = None,
        style: str = "main_only",
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> ChangesIterator:
        """A one-shot read of the changes up to the database's end (as of when the read
        gets there), a page at a time: unlike [subscribe()][cloudsync.Database.subscribe]
        it ends.

        Args:
            since: Where to start: `None`/`0` for the beginning, or a seq (such as the
                `last_seq` of an earlier read).
            limit: At most this many changes in all.
            include_docs: Deliver each change with its document.
            selector: A Mango selector the changes must match.
            doc_ids: Only these documents' changes.
            style: `"main_only"` (the winning revision) or `"all_docs"` (every leaf).
            page_size: Changes per request.

        Returns:
            A [ChangesIterator][cloudsync.ChangesIterator] of [Change][cloudsync.Change];
                its `last_seq` is where the read got to.

        Raises:
            ValueError: Options that do not go together, or a size out of range.
        """
        path = f"{self.path}/_changes"
        return ChangesIterator(
            lambda method, params, body: self._http.request(method, path, params=params, json=body, idempotent=True),
            since=since, limit=limit, page_size=page_size, include_docs=include_docs, selector=selector,
            doc_ids=doc_ids, style=style,
        )

    def subscribe(
        self,
        transport: str | Transport = "longpoll",
        *,
        since: Any = "now",
        include_docs: bool = False,
        selector: Mapping[str, Any] | None = None,
        doc_ids: Sequence[str] | None = None,
        filter: str | None = None,
        query_params: Mapping[str, Any] | None = None,
        checkpoint: CheckpointStore | None = None,
        checkpoint_every: int = 1,
        manual_ack: bool = False,
        heartbeat: float = 10.0,
        feed_timeout: float | None = 60.0,
        stall_timeout: float | None = None,
        stall_grace: float = 2.0,
        connect_timeout: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        queue_size: int = 1000,
        dedupe_window: int = 10_000,
        on_state_change: Callable[[SubscriptionState, SubscriptionState], Any] | None = None,
        transport_options: Mapping[str, Any] | None = None,
    ) -> Subscription:
        """Follow this database's changes: a [Subscription][cloudsync.Subscription].

        The options are the subscription's (a test keeps the two signatures in step); its
        page says more of each.

        Args:
            transport: A registered name (`"longpoll"`, `"continuous"`, `"sse"`,
                `"websocket"`) or a [Transport][cloudsync.Transport] instance.
            since: `"now"`, `None`/`0` for everything, or a seq; a checkpoint's seq wins.
            include_docs: Deliver each change with its document.
            selector: A Mango selector the changes must match.
            doc_ids: Only these documents' changes.
            filter: A design document filter, `"ddoc/name"`.
            query_params: Filter parameters and other query parameters.
            checkpoint: A [CheckpointStore][cloudsync.CheckpointStore] that keeps the
                acknowledged position.
            checkpoint_every: Save every n-th acknowledged position.
            manual_ack: The application acknowledges changes itself.
            heartbeat: Seconds between the heartbeats asked of the server.
            feed_timeout: Seconds after which the server should end a feed cleanly.
            stall_timeout: Seconds without a byte after which a connection is replaced.
            stall_grace: Seconds added to the default `stall_timeout`.
            connect_timeout: Seconds to open a connection.
            reconnect: How to wait between failed connections: a
                [ReconnectPolicy][cloudsync.ReconnectPolicy].
            queue_size: At most this many changes held between reader and application.
            dedupe_window: How many delivered (document, revisions) pairs to remember.
            on_state_change: Called as `on_state_change(old, new)` on every state change.
            transport_options: Passed to a named transport's constructor.

        Returns:
            The subscription, not started yet: iterate it, or call its `start()` or
                `batches()`.
        """
        from .subscription import Subscription

        return Subscription(
            self, transport, since=since, include_docs=include_docs, selector=selector,
            doc_ids=doc_ids, filter=filter, query_params=query_params, checkpoint=checkpoint,
            checkpoint_every=checkpoint_every, manual_ack=manual_ack, heartbeat=heartbeat,
            feed_timeout=feed_timeout, stall_timeout=stall_timeout, stall_grace=stall_grace,
            connect_timeout=connect_timeout, reconnect=reconnect, queue_size=queue_size,
            dedupe_window=dedupe_window, on_state_change=on_state_change,
            transport_options=transport_options,
        )

    def live_query(
        self,
        selector: Mapping[str, Any],
        *,
        sort: Sequence[Any] | None = None,
        limit: int | None = None,
        fields: Sequence[str] | None = None,
        transport: str | Transport = "longpoll",
        feed: str = "all",
        margin: int | None = None,
        page_size: int = 1000,
        batch_wait: float = 0.001,
        max_batch: int = 1000,
        reconnect: ReconnectPolicy | None = None,
        **subscription_options: Unpack[SubscriptionOptions],
    ) -> LiveQuery:
        """A query's results kept current: a [LiveQuery][cloudsync.LiveQuery].

        Reads the snapshot now; the results follow the changes feed as the live query is
        consumed (iterate it, or `start()` it). The options are the live query's (a test
        keeps the two signatures in step); its page says more of each.

        Args:
            selector: The Mango selector.
            sort: A Mango sort (needs an index, as for `query`); ties by `_id`.
            limit: At most this many results.
            fields: Results carry only these fields.
            transport: The feed's transport: a registered name or a
                [Transport][cloudsync.Transport].
            feed: `"all"` (evaluated here) or `"selector"` (filtered on the server).
            margin: With a `limit`, how many documents past the results to hold as well.
            page_size: Documents per request of the snapshot and refill queries.
            batch_wait: Seconds a batch waits for more changes after its first.
            max_batch: At most this many changes in one group (one batch of events).
            reconnect: How to wait between failed queries and connections: a
                [ReconnectPolicy][cloudsync.ReconnectPolicy].
            **subscription_options: The subscription's
                [SubscriptionOptions][cloudsync.SubscriptionOptions] (`heartbeat`,
                `transport_options`, ...).

        Returns:
            The live query, its `results` the snapshot.
        """
        from .live_query import LiveQuery

        return LiveQuery(
            self, selector, sort=sort, limit=limit, fields=fields, transport=transport, feed=feed, margin=margin,
            page_size=page_size, batch_wait=batch_wait, max_batch=max_batch, reconnect=reconnect,
            **subscription_options,
        )
