"""`POST /_session` as CouchDB 3 takes it (`name` or `username`, JSON or form) and the
`AuthSession` cookie it sets and renews."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cloudsync.server.auth import SESSION_TIMEOUT, Auth
from cloudsync.server.testing import ServerProcess, serve

ADMIN = ("admin", "s3cret")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with admin `admin:s3cret` and a data directory (holding the cookie secret)."""
    with serve(tmp_path_factory.mktemp("session"), admin=ADMIN) as server:
        yield server


def cookie_made(server: ServerProcess, seconds_ago: float) -> str:
    """An `AuthSession` cookie value for the admin, as the server would have made it `seconds_ago`."""
    assert server.data_dir is not None
    return Auth(dict([ADMIN]), Path(server.data_dir)).make_cookie("admin", time.time() - seconds_ago)


@pytest.mark.parametrize("send", [
    {"json": {"username": "admin", "password": "s3cret"}},
    {"data": {"username": "admin", "password": "s3cret"}},
], ids=["json", "form"])
def test_login_with_username(guarded, send):
    """`POST /_session` takes `username` in place of `name`, in a JSON or a form body."""
    r = requests.post(guarded.url + "/_session", **send)
    assert r.status_code == 200 and r.json()["name"] == "admin" and "AuthSession" in r.cookies


def test_login_with_name_and_the_same_username(guarded):
    """A body naming the user as both `name` and `username` logs in when the two agree."""
    r = requests.post(guarded.url + "/_session", json={"name": "admin", "username": "admin", "password": "s3cret"})
    assert r.status_code == 200 and r.json()["name"] == "admin"


def test_login_with_two_different_user_names_is_400(guarded):
    """`name` and `username` naming different users is a bad request, as in CouchDB."""
    r = requests.post(guarded.url + "/_session", json={"name": "admin", "username": "eve", "password": "s3cret"})
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason": "request body contains different usernames"}


@pytest.mark.parametrize("send", [{"json": {"password": "s3cret"}}, {"data": {"password": "s3cret"}}],
                         ids=["json", "form"])
def test_login_without_a_user_name_is_400(guarded, send):
    """A login body with neither `name` nor `username` is a bad request, as in CouchDB."""
    r = requests.post(guarded.url + "/_session", **send)
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason": "request body must contain a username"}


def test_login_body_that_is_not_an_object_is_400(guarded):
    """A JSON login body that is not an object is a bad request, not a server error."""
    r = requests.post(guarded.url + "/_session", json=["admin", "s3cret"])
    assert r.status_code == 400 and r.json()["error"] == "bad_request"


def test_session_cookie_has_expires_and_max_age(guarded):
    """The `AuthSession` cookie carries both `Max-Age` and `Expires` (and `HttpOnly`, `Path=/`)."""
    r = requests.post(guarded.url + "/_session", json={"name": "admin", "password": "s3cret"})
    header = r.headers["Set-Cookie"]
    assert f"Max-Age={SESSION_TIMEOUT}" in header and "expires=" in header.lower()
    assert "HttpOnly" in header and "Path=/" in header


def test_cookie_past_a_tenth_of_its_lifetime_is_renewed(guarded):
    """A request with a cookie older than 10% of the session timeout gets a new cookie."""
    old = cookie_made(guarded, SESSION_TIMEOUT * 0.2)
    r = requests.get(guarded.url + "/_session", cookies={"AuthSession": old})
    assert r.json()["userCtx"]["name"] == "admin"
    assert r.cookies.get("AuthSession") not in (None, old)


def test_fresh_cookie_is_not_renewed(guarded):
    """A request with a cookie younger than 10% of the session timeout gets no new cookie."""
    fresh = cookie_made(guarded, 0)
    r = requests.get(guarded.url + "/_session", cookies={"AuthSession": fresh})
    assert r.json()["userCtx"]["name"] == "admin" and "Set-Cookie" not in r.headers
