"""Database lifecycle against real servers."""

from __future__ import annotations

import pytest

import cloudsync

pytestmark = pytest.mark.integration


def test_create_list_info_delete(client):
    """A created database is listed, has info, exists, and is gone after deletion."""
    name = "lifecycle-db"
    db = client.create_database(name)
    try:
        assert name in client.databases()
        assert db.exists()
        assert db.info()["db_name"] == name
    finally:
        client.delete_database(name)
    assert not db.exists()
    assert name not in client.databases()


def test_creating_an_existing_database_raises_precondition_failed(client, db):
    """A second create is PreconditionFailed (CouchDB's 412 file_exists)."""
    with pytest.raises(cloudsync.PreconditionFailed) as info:
        client.create_database(db.name)
    assert info.value.error == "file_exists"


def test_exist_ok_returns_the_existing_database(client, db):
    """exist_ok=True makes create idempotent."""
    assert client.create_database(db.name, exist_ok=True) == db


def test_deleting_a_missing_database_raises_not_found(client):
    """DELETE of a missing database is NotFound on every server, as on CouchDB 3."""
    with pytest.raises(cloudsync.NotFound):
        client.delete_database("never-created")
    client.delete_database("never-created", missing_ok=True)


def test_info_of_a_missing_database_raises_not_found(client):
    """A handle on a missing database raises NotFound when used."""
    with pytest.raises(cloudsync.NotFound):
        client.database("no-such-db").info()


def test_database_name_with_slash_round_trips(client, server_kind):
    """A legal name containing / is encoded as one segment and reaches the right database."""
    db = client.create_database("team/orders")
    try:
        db.create({"_id": "x"})
        assert db.get("x")["_id"] == "x"
        # pouchdb-server 4.2.0 drops the slash from the stored name; CouchDB 3 keeps it.
        expected = "teamorders" if server_kind == "pouchdb" else "team/orders"
        assert db.info()["db_name"] == expected
    finally:
        client.delete_database("team/orders")


def test_server_info(client):
    """GET / answers with a version."""
    assert "version" in client.info()
