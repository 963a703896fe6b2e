"""Database endpoints: create, read, list, delete and name rules, as CouchDB 3 answers them."""

from __future__ import annotations

import itertools
from urllib.parse import quote

import pytest

_special = itertools.count()


def name_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def url_of(server, name: str) -> str:
    """The URL of database `name`, its slashes percent-encoded as clients must."""
    return f"{server.url}/{quote(name, safe='$()+')}"


@pytest.fixture
def special_name() -> str:
    """A new database name that uses every special character a name may hold."""
    return f"a{next(_special)}/b$c(d)+e-f_g"


def test_put_database_answers_ok(unused_db, http):
    """`PUT /db` answers `{"ok": true}`."""
    assert http.put(unused_db).json() == {"ok": True}


def test_put_existing_database_is_412_file_exists(db, http):
    """`PUT` of an existing database is 412 file_exists."""
    r = http.put(db)
    assert r.status_code == 412
    assert r.json()["error"] == "file_exists"


def test_new_database_is_listed_in_all_dbs(server, db, http):
    """A new database is listed by `/_all_dbs`."""
    assert name_of(db) in http.get(server.url + "/_all_dbs").json()


def test_new_database_info_is_empty(db, http):
    """`GET /db` of a new database gives its name, no documents and update_seq "0"."""
    info = http.get(db).json()
    assert info["db_name"] == name_of(db)
    assert info["doc_count"] == 0
    assert info["update_seq"] == "0"


def test_delete_database_answers_ok(db, http):
    """`DELETE /db` answers `{"ok": true}`."""
    assert http.delete(db).json() == {"ok": True}


def test_delete_missing_database_is_404_not_found(unused_db, http):
    """`DELETE` of a database that does not exist is 404 not_found."""
    r = http.delete(unused_db)
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


def test_deleted_database_is_404(db, http):
    """A deleted database is 404."""
    http.delete(db)
    assert http.get(db).status_code == 404


@pytest.mark.parametrize("bad", ["Upper", "1abc", "_private", "a%20b"])
def test_illegal_database_name_is_400(server, http, bad):
    """A name with upper case, a leading digit or underscore, or a space is 400 illegal_database_name."""
    r = http.put(f"{server.url}/{bad}")
    assert r.status_code == 400, bad
    assert r.json()["error"] == "illegal_database_name", bad


def test_database_name_may_hold_special_characters(server, http, special_name):
    """A name with `/$()+-_` (the slash percent-encoded in the path) is created: 201."""
    assert http.put(url_of(server, special_name)).status_code == 201


def test_special_database_name_is_listed_decoded(server, http, special_name):
    """`/_all_dbs` lists a special-character name decoded."""
    http.put(url_of(server, special_name))
    assert special_name in http.get(server.url + "/_all_dbs").json()


def test_special_database_name_reads_back_decoded(server, http, special_name):
    """`GET /db` of a special-character name gives `db_name` decoded."""
    url = url_of(server, special_name)
    http.put(url)
    assert http.get(url).json()["db_name"] == special_name
