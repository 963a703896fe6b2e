"""URL paths for databases and documents: validation and percent-encoding."""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = ["attachment_path", "db_path", "doc_path", "segment", "validate_db_name", "validate_doc_id"]

# CouchDB 3's rule for database names (system databases start with an underscore).
_DB_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")
_SYSTEM_DBS = frozenset({"_users", "_replicator", "_global_changes"})
_RESERVED_PREFIXES = ("_design/", "_local/")


def validate_db_name(name: str) -> None:
    """Raise `ValueError` unless `name` is a legal CouchDB database name."""
    if not isinstance(name, str):
        raise TypeError(f"database name must be a str, not {type(name).__name__}")
    if name in _SYSTEM_DBS:
        return
    if len(name) > 238 or not _DB_NAME.match(name):
        raise ValueError(
            f"illegal database name {name!r}: use 1-238 characters, a lowercase letter first, "
            "then lowercase letters, digits and any of _$()+-/"
        )


def validate_doc_id(doc_id: str) -> None:
    """Raise `ValueError`/`TypeError` for ids no server can store."""
    if not isinstance(doc_id, str):
        raise TypeError(f"document id must be a str, not {type(doc_id).__name__}")
    if not doc_id:
        raise ValueError("document id must not be empty")


def segment(text: str) -> str:
    """`text` percent-encoded as one path segment."""
    encoded = quote(text, safe="")
    # "." and ".." would be resolved away as path segments by URL normalisation.
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    return encoded


def db_path(name: str) -> str:
    """`/<name>` with the name percent-encoded (`/` in a name becomes `%2F`)."""
    validate_db_name(name)
    return "/" + segment(name)


def doc_path(db: str, doc_id: str) -> str:
    """The path of a document: `_design/` and `_local/` keep their literal slash."""
    validate_doc_id(doc_id)
    for prefix in _RESERVED_PREFIXES:
        if doc_id.startswith(prefix) and len(doc_id) > len(prefix):
            return f"{db}/{prefix}{segment(doc_id[len(prefix):])}"
    return f"{db}/{segment(doc_id)}"


def attachment_path(db: str, doc_id: str, name: str) -> str:
    """The path of attachment `name` of a document. CouchDB takes the slashes of a
    name literally after a plain document id; after a `_design/` id the rest of the path
    could name a design function, so there every slash of the name is encoded."""
    if not isinstance(name, str) or not name:
        raise ValueError("attachment name must be a non-empty string")
    if doc_id.startswith("_design/"):
        quoted = segment(name)
    else:
        quoted = "/".join(segment(part) for part in name.split("/"))
    return f"{doc_path(db, doc_id)}/{quoted}"
