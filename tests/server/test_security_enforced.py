"""The embedded server enforces each database's `_security` as CouchDB 3 does: members
(by name or role) read and write documents, database admins also design documents and
`_security`, server admins everything; a database never given `_security` is admin-only.
Users are JWT users of different names and roles."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import requests

from tests._servers.iam import token_for
from tests.conftest import ADMIN, JWT_SECRET

_names = itertools.count()


def as_user(name: str, *roles: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token_for(name, roles, JWT_SECRET, lifetime=300)}"
    return session


@pytest.fixture
def secured_db(jwt_server) -> Iterator[str]:
    """A database whose members are `alice` and role `staff`, and whose admins are `dora`
    and role `leads`."""
    url = f"{jwt_server.url}/security-{next(_names)}"
    assert requests.put(url, auth=ADMIN, timeout=10).status_code == 201
    security = {"members": {"names": ["alice"], "roles": ["staff"]},
                "admins": {"names": ["dora"], "roles": ["leads"]}}
    assert requests.put(url + "/_security", json=security, auth=ADMIN, timeout=10).status_code == 200
    requests.put(url + "/doc", json={"v": 1}, auth=ADMIN, timeout=10)
    yield url
    requests.delete(url, auth=ADMIN, timeout=10)


@pytest.fixture
def fresh_db(jwt_server) -> Iterator[str]:
    """A database whose `_security` was never set."""
    url = f"{jwt_server.url}/security-{next(_names)}"
    assert requests.put(url, auth=ADMIN, timeout=10).status_code == 201
    yield url
    requests.delete(url, auth=ADMIN, timeout=10)


def _forbidden(response: requests.Response) -> bool:
    return response.status_code == 403 and response.json()["error"] == "forbidden"


def test_member_by_name_reads_and_writes_documents(secured_db):
    """A user named in `members.names` reads and writes documents."""
    alice = as_user("alice")
    assert alice.get(secured_db + "/doc", timeout=10).json()["v"] == 1
    assert alice.put(secured_db + "/by-alice", json={}, timeout=10).status_code == 201


def test_member_by_role_reads_and_writes_documents(secured_db):
    """A user holding a role of `members.roles` reads and writes documents."""
    bob = as_user("bob", "staff")
    assert bob.get(secured_db + "/_all_docs", timeout=10).status_code == 200
    assert bob.post(secured_db + "/_bulk_docs", json={"docs": [{"_id": "by-bob"}]}, timeout=10).status_code == 201


def test_non_member_is_forbidden_to_read(secured_db):
    """An authenticated user who is no member gets 403 forbidden on reads."""
    eve = as_user("eve", "guests")
    for path in ("", "/doc", "/_all_docs", "/_changes", "/_security"):
        assert _forbidden(eve.get(secured_db + path, timeout=10)), path


def test_non_member_is_forbidden_to_write(secured_db):
    """An authenticated user who is no member gets 403 forbidden on writes."""
    eve = as_user("eve")
    assert _forbidden(eve.put(secured_db + "/by-eve", json={}, timeout=10))
    assert _forbidden(eve.post(secured_db + "/_bulk_docs", json={"docs": [{}]}, timeout=10))
    assert _forbidden(eve.post(secured_db + "/_find", json={"selector": {}}, timeout=10))


def test_non_member_is_forbidden_the_websocket_feed(secured_db):
    """The WebSocket upgrade of `_changes` is refused to a non-member before it happens."""
    eve = as_user("eve")
    r = eve.get(secured_db + "/_changes?feed=websocket", timeout=10,
                headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert _forbidden(r)


def test_member_may_not_write_design_documents(secured_db):
    """A member who is no database admin may not write a design document (PUT, POST,
    `_bulk_docs`) nor create a Mango index."""
    alice = as_user("alice")
    assert _forbidden(alice.put(secured_db + "/_design/x", json={}, timeout=10))
    assert _forbidden(alice.post(secured_db, json={"_id": "_design/y"}, timeout=10))
    assert _forbidden(alice.post(secured_db + "/_index", json={"index": {"fields": ["a"]}}, timeout=10))
    rows = alice.post(secured_db + "/_bulk_docs", json={"docs": [{"_id": "_design/z"}, {"_id": "plain"}]},
                      timeout=10).json()
    assert rows[0] == {"id": "_design/z", "error": "forbidden", "reason": "You are not a db or server admin."}
    assert rows[1]["ok"] is True


def test_member_may_not_change_security(secured_db):
    """A member who is no database admin may read `_security` but not change it."""
    alice = as_user("alice")
    assert alice.get(secured_db + "/_security", timeout=10).status_code == 200
    assert _forbidden(alice.put(secured_db + "/_security", json={}, timeout=10))


def test_db_admin_by_name_writes_design_documents_and_security(secured_db):
    """A user named in `admins.names` writes design documents and `_security`."""
    dora = as_user("dora")
    assert dora.put(secured_db + "/_design/x", json={}, timeout=10).status_code == 201
    members = {"members": {"names": ["alice", "carl"]}, "admins": {"names": ["dora"]}}
    assert dora.put(secured_db + "/_security", json=members, timeout=10).status_code == 200
    assert as_user("carl").get(secured_db + "/doc", timeout=10).status_code == 200


def test_db_admin_by_role_creates_an_index(secured_db):
    """A user holding a role of `admins.roles` creates a Mango index (a design document)."""
    lead = as_user("lena", "leads")
    assert lead.post(secured_db + "/_index", json={"index": {"fields": ["v"]}}, timeout=10).status_code == 200


def test_db_admin_may_not_delete_the_database(secured_db):
    """Deleting a database is for server admins only, not database admins."""
    assert _forbidden(as_user("dora").delete(secured_db, timeout=10))


def test_server_admin_role_passes_any_security(secured_db):
    """A JWT user with the `_admin` role reads and writes anything, whatever `_security` says."""
    root = as_user("root", "_admin")
    assert root.get(secured_db + "/doc", timeout=10).status_code == 200
    assert root.put(secured_db + "/_design/root", json={}, timeout=10).status_code == 201


def test_empty_members_open_the_database_to_any_user(fresh_db):
    """With `_security` naming admins but no members, any authenticated user is a member."""
    security = {"members": {"names": [], "roles": []}, "admins": {"names": ["dora"], "roles": []}}
    assert requests.put(fresh_db + "/_security", json=security, auth=ADMIN, timeout=10).status_code == 200
    eve = as_user("eve")
    assert eve.put(fresh_db + "/by-eve", json={}, timeout=10).status_code == 201
    assert _forbidden(eve.put(fresh_db + "/_design/x", json={}, timeout=10))


def test_database_without_security_is_admin_only(fresh_db):
    """A database whose `_security` was never set admits server admins only (CouchDB 3's
    `default_security = admin_only`)."""
    assert _forbidden(as_user("alice", "staff").get(fresh_db, timeout=10))
    assert as_user("root", "_admin").get(fresh_db, timeout=10).status_code == 200


def test_all_dbs_is_for_server_admins(jwt_server):
    """`GET /_all_dbs` is for server admins (CouchDB 3's `admin_only_all_dbs`)."""
    assert _forbidden(as_user("alice").get(jwt_server.url + "/_all_dbs", timeout=10))
    assert as_user("root", "_admin").get(jwt_server.url + "/_all_dbs", timeout=10).status_code == 200


def test_open_server_endpoints_need_no_admin(jwt_server):
    """`_up`, `_uuids` and `_session` answer any authenticated user."""
    alice = as_user("alice")
    for path in ("/_up", "/_uuids", "/_session"):
        assert alice.get(jwt_server.url + path, timeout=10).status_code == 200, path
