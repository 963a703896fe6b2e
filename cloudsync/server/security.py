"""Who may do what: server admins, and each database's `_security` members and admins,
as CouchDB 3 decides it (`couch_db:check_is_member`, `check_is_admin`).

- A server admin (an `--admin` login, a JWT with the `_admin` role, or anyone on a server
  without authentication) may do everything.
- A database admin (named in `admins.names`, or holding a role of `admins.roles`) may
  also write design documents, `_security`, `_revs_limit`, Mango indexes and compact.
- A member (named in `members.names` or holding a role of `members.roles`) may read and
  write documents. When `members` names no one and no role, every authenticated user is a
  member. A database whose `_security` was never set is admin-only (CouchDB 3's
  `[couchdb] default_security = admin_only`).
- Creating and deleting databases, `_all_dbs` and other server-wide endpoints are for
  server admins.

An authenticated user who may not is answered `403 forbidden`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from .errors import CouchError
from .storage import Database

__all__ = ["DEFAULT_SECURITY", "Level", "check", "design_refused", "is_db_admin", "is_design", "level_for",
           "require_server_admin"]

DEFAULT_SECURITY = {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}}
"""CouchDB 3's answer for a database whose security object was never set: admins only."""
ADMIN_ROLE = "_admin"
OPEN_SERVER_PATHS = frozenset({"_up", "_uuids", "_session"})
"""Server-wide endpoints any user may call (the rest are for server admins)."""


class Level(enum.IntEnum):
    """What a request needs of its user on a database."""

    MEMBER = 1
    DB_ADMIN = 2
    SERVER_ADMIN = 3


_NOT_MEMBER = "You are not allowed to access this db."
_NOT_DB_ADMIN = "You are not a db or server admin."
_NOT_SERVER_ADMIN = "You are not a server admin."
_WRITES = frozenset({"PUT", "POST", "DELETE", "COPY"})
_ADMIN_WRITES = frozenset({"_security", "_revs_limit", "_index"})
_ADMIN_ONLY = frozenset({"_compact", "_view_cleanup"})


def _roles(request: web.Request) -> Sequence[str] | None:
    """The user's roles, or `None` when the server needs no authentication (everyone is
    an admin then)."""
    if "user" not in request:
        return None
    return request.get("roles", (ADMIN_ROLE,))


def is_server_admin(request: web.Request) -> bool:
    roles = _roles(request)
    return roles is None or ADMIN_ROLE in roles


def _security(db: Database) -> dict[str, Any]:
    stored = db.setting("security")
    return DEFAULT_SECURITY if not isinstance(stored, dict) else stored


def _named(section: Any, name: str, roles: Sequence[str]) -> bool:
    if not isinstance(section, dict):
        return False
    return name in section.get("names", ()) or any(r in section.get("roles", ()) for r in roles)


def _is_open(section: Any) -> bool:
    return not isinstance(section, dict) or not (section.get("names") or section.get("roles"))


def _allowed(request: web.Request, db: Database, level: Level) -> bool:
    if is_server_admin(request):
        return True
    if level is Level.SERVER_ADMIN:
        return False
    name, roles = request["user"], _roles(request) or ()
    security = _security(db)
    if _named(security.get("admins"), name, roles):
        return True
    if level is Level.DB_ADMIN:
        return False
    members = security.get("members")
    return _is_open(members) or _named(members, name, roles)


def is_db_admin(request: web.Request, db: Database) -> bool:
    """Whether the request's user may write design documents in `db`."""
    return _allowed(request, db, Level.DB_ADMIN)


def is_design(doc: Any) -> bool:
    """Whether a document of a bulk write is a design document."""
    return isinstance(doc, dict) and isinstance(doc.get("_id"), str) and doc["_id"].startswith("_design/")


def design_refused(doc: dict[str, Any]) -> dict[str, Any]:
    """The per-document answer of a bulk write refused a design document, as CouchDB's."""
    return {"id": doc["_id"], "error": "forbidden", "reason": _NOT_DB_ADMIN}


def check(request: web.Request, db: Database, level: Level) -> None:
    """Raise `403 forbidden` unless the request's user has `level` on `db`."""
    if not _allowed(request, db, level):
        reason = {Level.MEMBER: _NOT_MEMBER, Level.DB_ADMIN: _NOT_DB_ADMIN}.get(level, _NOT_SERVER_ADMIN)
        raise CouchError(403, "forbidden", reason)


def require_server_admin(request: web.Request) -> None:
    """Raise `403 forbidden` unless the request's user is a server admin."""
    if not is_server_admin(request):
        raise CouchError(403, "forbidden", _NOT_SERVER_ADMIN)


def level_for(method: str, rest: Sequence[str]) -> Level:
    """What a request to `/{db}/{rest...}` needs (`rest`: at least one segment, with
    `_design/x` and `_local/x` joined into one)."""
    head = rest[0]
    if head in _ADMIN_ONLY:
        return Level.DB_ADMIN
    if method in _WRITES and (head in _ADMIN_WRITES or head.startswith("_design/")):
        return Level.DB_ADMIN
    return Level.MEMBER
