"""A server with an admin: what is public, Basic auth, cookie sessions (`/_session`) and
logging out, as CouchDB 3 answers them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
import requests

from cloudsync.server.testing import ServerProcess, serve

ADMIN = ("admin", "s3cret")
_names = itertools.count()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with admin `admin:s3cret`, a data directory and a database `db`."""
    with serve(tmp_path_factory.mktemp("guarded"), admin=ADMIN) as server:
        assert requests.put(server.url + "/db", auth=ADMIN).status_code == 201
        yield server


def logged_in(url: str) -> requests.Session:
    """A session logged in as the admin through `POST /_session` (form data)."""
    http = requests.Session()
    r = http.post(url + "/_session", data={"name": "admin", "password": "s3cret"})
    assert r.status_code == 200
    return http


@pytest.mark.parametrize("path", ["/", "/_up"])
def test_welcome_and_up_are_public(guarded, http, path):
    """`/` and `/_up` answer 200 without credentials."""
    assert http.get(guarded.url + path).status_code == 200


def test_anonymous_request_is_401_with_a_basic_challenge(guarded, http):
    """Anything else without credentials is 401 unauthorized with a `Basic` challenge."""
    r = http.get(guarded.url + "/_all_dbs")
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Basic")


def test_wrong_basic_password_is_401(guarded, http):
    """Basic auth with a wrong password is 401."""
    assert http.get(guarded.url + "/_all_dbs", auth=("admin", "wrong")).status_code == 401


def test_admin_basic_auth_is_served(guarded, http):
    """Basic auth as the admin is served: creating a database is 201."""
    assert http.put(f"{guarded.url}/made{next(_names)}", auth=ADMIN).status_code == 201


def test_anonymous_session_has_no_user(guarded, http):
    """`GET /_session` without credentials names no user."""
    assert http.get(guarded.url + "/_session").json()["userCtx"]["name"] is None


def test_login_with_a_wrong_password_is_401(guarded, http):
    """`POST /_session` with a wrong password is 401."""
    assert http.post(guarded.url + "/_session", json={"name": "admin", "password": "nope"}).status_code == 401


def test_login_with_form_data_sets_the_session_cookie(guarded, http):
    """`POST /_session` with form data is 200, names the user and sets `AuthSession`."""
    r = http.post(guarded.url + "/_session", data={"name": "admin", "password": "s3cret"})
    assert r.status_code == 200
    assert r.json()["name"] == "admin"
    assert "AuthSession" in http.cookies


def test_login_with_a_json_body(guarded, http):
    """`POST /_session` with a JSON body is 200."""
    r = http.post(guarded.url + "/_session", json={"name": "admin", "password": "s3cret"})
    assert r.status_code == 200


def test_session_cookie_authenticates(guarded):
    """Requests with the session cookie are served."""
    with logged_in(guarded.url) as http:
        assert http.get(guarded.url + "/db").status_code == 200


def test_session_names_the_logged_in_admin(guarded):
    """`GET /_session` with the cookie names the admin and its `_admin` role."""
    with logged_in(guarded.url) as http:
        assert http.get(guarded.url + "/_session").json()["userCtx"] == {"name": "admin", "roles": ["_admin"]}


def test_session_survives_a_restart(guarded):
    """A session cookie still works after a restart (the secret lives in the data directory)."""
    with logged_in(guarded.url) as http:
        guarded.restart()
        assert http.get(guarded.url + "/db").status_code == 200


def test_logout_answers_ok(guarded):
    """`DELETE /_session` answers `{"ok": true}`."""
    with logged_in(guarded.url) as http:
        assert http.delete(guarded.url + "/_session").json() == {"ok": True}


def test_logout_expires_the_cookie_by_date_and_by_age(guarded):
    """The logout answer clears `AuthSession` with `Max-Age=0` and an `Expires` date in the
    past, as CouchDB does, so a cookie jar that reads only `Expires` drops it too."""
    with logged_in(guarded.url) as http:
        header = http.delete(guarded.url + "/_session").headers["Set-Cookie"]
    cookie = SimpleCookie()
    cookie.load(header)
    assert cookie["AuthSession"].value == ""
    assert cookie["AuthSession"]["max-age"] == "0"
    assert cookie["AuthSession"]["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"


def test_logout_ends_the_session(guarded):
    """After `DELETE /_session` the cookie no longer authenticates: 401."""
    with logged_in(guarded.url) as http:
        http.delete(guarded.url + "/_session")
        assert http.get(guarded.url + "/db").status_code == 401
