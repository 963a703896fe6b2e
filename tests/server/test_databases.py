"""Database endpoints: create, read, list, delete and name rules, as CouchDB 3 answers them."""

from __future__ import annotations

import itertools
import json
from urllib.parse import quote

import pytest
import requests

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


# -- _all_dbs paging ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paged(server):
    """Databases pg-a .. pg-e on the session server; yields their prefix."""
    with requests.Session() as http:
        for c in "abcde":
            assert http.put(f"{server.url}/pg-{c}").status_code in (201, 412)
        yield "pg-"
        for c in "abcde":
            http.delete(f"{server.url}/pg-{c}")


def all_dbs(server, **params) -> list[str]:
    r = requests.get(server.url + "/_all_dbs", params={k: json.dumps(v) if k.endswith("key") else v
                                                        for k, v in params.items()}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_all_dbs_start_key_and_end_key_bound_the_names(server, paged):
    """start_key/end_key (and the startkey/endkey spellings) select a range of names."""
    assert all_dbs(server, start_key="pg-b", end_key="pg-d") == ["pg-b", "pg-c", "pg-d"]
    assert all_dbs(server, startkey="pg-b", endkey="pg-c") == ["pg-b", "pg-c"]


def test_all_dbs_inclusive_end_false_leaves_out_the_end(server, paged):
    """inclusive_end=false leaves out a name equal to end_key."""
    assert all_dbs(server, start_key="pg-a", end_key="pg-c", inclusive_end="false") == ["pg-a", "pg-b"]


def test_all_dbs_skip_and_limit_page_within_the_range(server, paged):
    """skip and limit apply after the range."""
    assert all_dbs(server, start_key="pg-", end_key="pg-z", skip=1, limit=2) == ["pg-b", "pg-c"]


def test_all_dbs_descending_walks_from_start_key_down(server, paged):
    """descending=true starts at start_key and goes down to end_key."""
    assert all_dbs(server, descending="true", start_key="pg-d", end_key="pg-b") == ["pg-d", "pg-c", "pg-b"]


@pytest.mark.parametrize("params", [{"start_key": "pg-a"}, {"end_key": "[1]"}, {"limit": "x"}])
def test_all_dbs_bad_parameters_are_400(server, params):
    """A start_key that is not JSON, a key that is not a string, a bad limit: 400 bad_request."""
    r = requests.get(server.url + "/_all_dbs", params=params, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
