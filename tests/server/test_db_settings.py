"""Per-database settings and maintenance as CouchDB 3 answers them: `_security`,
`_revs_limit`, `_compact`, `_view_cleanup`."""

from __future__ import annotations

import pytest
import requests

SECURITY = {"admins": {"names": ["ann"], "roles": []}, "members": {"names": [], "roles": ["staff"]}}


def test_security_defaults_to_admins_only(db, http):
    """A database whose `_security` was never set answers CouchDB 3's admin-only object."""
    assert http.get(db + "/_security").json() == {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}}


def test_security_put_is_stored_and_served(db, http):
    """`PUT _security` answers ok and `GET _security` serves the object stored."""
    assert http.put(db + "/_security", json=SECURITY).json() == {"ok": True}
    assert http.get(db + "/_security").json() == SECURITY


@pytest.mark.parametrize("bad", [[], {"admins": []}, {"members": {"names": "ann"}}])
def test_security_put_rejects_a_malformed_object(db, http, bad):
    """A security object that is not `{admins, members}` of name and role lists is 400."""
    assert http.put(db + "/_security", json=bad).status_code == 400


def test_revs_limit_defaults_to_1000(db, http):
    """`GET _revs_limit` answers CouchDB's default, 1000."""
    assert http.get(db + "/_revs_limit").json() == 1000


def test_revs_limit_put_is_stored_and_served(db, http):
    """`PUT _revs_limit` with a positive integer answers ok; `GET` serves it."""
    assert http.put(db + "/_revs_limit", data="50").json() == {"ok": True}
    assert http.get(db + "/_revs_limit").json() == 50


@pytest.mark.parametrize("bad", ["0", '"5"', "true", "{}"])
def test_revs_limit_put_rejects_anything_but_a_positive_integer(db, http, bad):
    """`PUT _revs_limit` with anything but a positive integer is 400."""
    assert http.put(db + "/_revs_limit", data=bad).status_code == 400


@pytest.mark.parametrize("path", ["_compact", "_view_cleanup"])
def test_maintenance_is_accepted(db, http, path):
    """`POST _compact` and `POST _view_cleanup` answer 202 `{"ok": true}`."""
    r = http.post(f"{db}/{path}", json={})
    assert r.status_code == 202 and r.json() == {"ok": True}


def test_compact_needs_a_json_content_type(db, http):
    """`POST _compact` without `Content-Type: application/json` is 415, as CouchDB."""
    assert http.post(db + "/_compact", data="").status_code == 415


def test_compact_needs_a_login(secured):
    """On a server with an admin, `_compact` without credentials is 401 (admins only)."""
    assert requests.post(secured.url + "/_users/_compact", json={}).status_code == 401
