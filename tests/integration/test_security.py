"""`db.security()` / `db.set_security()`: the security object round-trips, and a
malformed one is refused before it is sent."""

from __future__ import annotations

import pytest

import cloudsync

pytestmark = pytest.mark.integration

SECURITY = {"admins": {"names": ["ada"], "roles": ["ops"]}, "members": {"names": ["bob"], "roles": ["readers"]}}


def test_set_security_then_security_round_trips(db):
    """What set_security() stores, security() reads back."""
    db.set_security(SECURITY)
    assert db.security() == SECURITY


def test_a_new_database_answers_the_servers_default(db, server_kind):
    """A database never given one answers CouchDB 3's admins-only default (embedded) or
    {} (pouchdb-server)."""
    default = {} if server_kind == "pouchdb" else {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}}
    assert db.security() == default


def test_extra_top_level_members_are_passed_through(db):
    """Members other than admins and members (Cloudant's `cloudant`) are sent as given."""
    security = {**SECURITY, "cloudant": {"apikey-1": ["_reader"]}}
    db.set_security(security)
    assert db.security()["cloudant"] == {"apikey-1": ["_reader"]}


@pytest.mark.parametrize(("bad", "error"), [
    ("admins", TypeError),
    ({"admins": ["ada"]}, TypeError),
    ({"members": {"name": ["bob"]}}, ValueError),
    ({"members": {"names": "bob"}}, ValueError),
    ({"admins": {"roles": [1]}}, ValueError),
])
def test_a_malformed_security_object_is_refused_before_sending(db, bad, error):
    """A wrong shape is a TypeError/ValueError and the stored object is unchanged."""
    db.set_security(SECURITY)
    with pytest.raises(error):
        db.set_security(bad)
    assert db.security() == SECURITY


def test_security_of_a_missing_database_is_not_found(client):
    """Reading the security object of a database that does not exist is NotFound."""
    with pytest.raises(cloudsync.NotFound):
        client.database("no-such-db-security").security()
