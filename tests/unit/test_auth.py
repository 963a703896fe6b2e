"""Basic, cookie-session and bearer-token auth; secrets stay out of repr, logs and errors."""

from __future__ import annotations

import logging

import pytest
import responses
from responses import matchers

import cloudsync

URL = "http://couch.test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def session_ok(cookie: str) -> dict:
    return {
        "status": 200,
        "json": {"ok": True, "name": "alice", "roles": []},
        "headers": {"Set-Cookie": f"AuthSession={cookie}; Version=1; Path=/; HttpOnly"},
    }


@responses.activate
def test_basic_auth_from_url_credentials():
    """Credentials in the URL become basic auth and are removed from the URL."""
    responses.get(f"{URL}/db", json={}, match=[matchers.header_matcher({"Authorization": "Basic YWxpY2U6czNjcjN0"})])
    client = cloudsync.Client("http://alice:s3cr3t@couch.test")
    client.database("db").info()
    assert client.url == URL


@responses.activate
def test_cookie_auth_logs_in_once_and_sends_the_cookie():
    """CookieAuth posts to /_session once and sends AuthSession on every request."""
    login = responses.post(f"{URL}/_session", **session_ok("c1"))
    responses.get(f"{URL}/db", json={}, match=[matchers.header_matcher({"Cookie": "AuthSession=c1"})])
    client = cloudsync.Client(URL, auth=cloudsync.CookieAuth("alice", "pw"))
    client.database("db").info()
    client.database("db").info()
    assert login.call_count == 1
    assert login.calls[0].request.body == b'{"name":"alice","password":"pw"}'


@responses.activate
def test_cookie_auth_renews_after_a_401():
    """A 401 mid-life (session expired on the server) renews the session and resends once."""
    responses.post(f"{URL}/_session", **session_ok("old"))
    responses.post(f"{URL}/_session", **session_ok("new"))
    responses.get(f"{URL}/db", status=401, json={"error": "unauthorized"}, match=[matchers.header_matcher({"Cookie": "AuthSession=old"})])
    responses.get(f"{URL}/db", json={"db_name": "db"}, match=[matchers.header_matcher({"Cookie": "AuthSession=new"})])
    client = cloudsync.Client(URL, auth=cloudsync.CookieAuth("alice", "pw"))
    assert client.database("db").info() == {"db_name": "db"}


@responses.activate
def test_cookie_auth_renews_before_expiry():
    """After renew_after seconds the session is renewed before the next request."""
    clock = Clock()
    login = responses.post(f"{URL}/_session", **session_ok("c"))
    responses.get(f"{URL}/db", json={})
    client = cloudsync.Client(URL, auth=cloudsync.CookieAuth("alice", "pw", renew_after=300, clock=clock))
    client.database("db").info()
    clock.now += 299
    client.database("db").info()
    assert login.call_count == 1
    clock.now += 2
    client.database("db").info()
    assert login.call_count == 2


@responses.activate
def test_wrong_password_raises_unauthorized_without_the_password():
    """A refused login raises Unauthorized; the password is in no message."""
    responses.post(f"{URL}/_session", status=401, json={"error": "unauthorized", "reason": "Name or password is incorrect."})
    client = cloudsync.Client(URL, auth=cloudsync.CookieAuth("alice", "hunter2"))
    with pytest.raises(cloudsync.Unauthorized) as info:
        client.database("db").info()
    assert "hunter2" not in str(info.value)


@responses.activate
def test_persistent_401_is_raised_after_one_renewal():
    """A 401 that survives a renewal is raised, not looped on."""
    login = responses.post(f"{URL}/_session", **session_ok("c"))
    get = responses.get(f"{URL}/db", status=401, json={"error": "unauthorized"})
    client = cloudsync.Client(URL, auth=cloudsync.CookieAuth("alice", "pw"))
    with pytest.raises(cloudsync.Unauthorized):
        client.database("db").info()
    assert (login.call_count, get.call_count) == (2, 2)


@responses.activate
def test_bearer_token_is_cached_until_near_expiry():
    """The provider is asked again only when the token is within refresh_margin of expiring."""
    clock = Clock()
    tokens = iter([("t1", 600.0), ("t2", 600.0)])
    auth = cloudsync.BearerTokenAuth(lambda: next(tokens), refresh_margin=60, clock=clock)
    first = responses.get(f"{URL}/db", json={}, match=[matchers.header_matcher({"Authorization": "Bearer t1"})])
    client = cloudsync.Client(URL, auth=auth)
    client.database("db").info()
    clock.now += 500
    client.database("db").info()
    assert first.call_count == 2
    clock.now += 50  # 550 s: inside the 60 s margin
    responses.get(f"{URL}/db", json={"second": True}, match=[matchers.header_matcher({"Authorization": "Bearer t2"})])
    assert client.database("db").info() == {"second": True}


@responses.activate
def test_bearer_token_is_refetched_after_a_401():
    """A 401 asks the provider for a new token and resends once."""
    tokens = iter(["expired", "fresh"])
    responses.get(f"{URL}/db", status=401, json={}, match=[matchers.header_matcher({"Authorization": "Bearer expired"})])
    responses.get(f"{URL}/db", json={"ok": 1}, match=[matchers.header_matcher({"Authorization": "Bearer fresh"})])
    client = cloudsync.Client(URL, auth=cloudsync.BearerTokenAuth(lambda: next(tokens)))
    assert client.database("db").info() == {"ok": 1}


def test_bearer_provider_returning_nothing_is_a_type_error():
    """A provider that returns no token is reported clearly."""
    auth = cloudsync.BearerTokenAuth(lambda: "")
    with pytest.raises(TypeError, match="non-empty str"):
        auth.headers(None)  # type: ignore[arg-type]


@responses.activate
def test_credentials_never_appear_in_repr_errors_or_logs(caplog):
    """The password is in no repr, exception message or DEBUG log line."""
    caplog.set_level(logging.DEBUG, logger="cloudsync")
    responses.get(f"{URL}/db", status=500, json={"error": "boom"})
    client = cloudsync.Client("http://alice:topsecret@couch.test", retry=cloudsync.RetryPolicy.never())
    with pytest.raises(cloudsync.ServerError) as info:
        client.database("db").info()
    texts = [repr(client), repr(client.auth), str(info.value), caplog.text,
             repr(cloudsync.CookieAuth("alice", "topsecret")), repr(cloudsync.BearerTokenAuth(lambda: "topsecret"))]
    assert caplog.text  # a line was logged
    assert all("topsecret" not in text for text in texts)


@responses.activate
def test_login_without_a_session_cookie_is_invalid_response():
    """A /_session answer with no AuthSession cookie is an InvalidResponse, not a crash."""
    responses.post(f"{URL}/_session", json={"ok": True})
    client = cloudsync.Client(URL, auth=cloudsync.CookieAuth("alice", "pw"))
    with pytest.raises(cloudsync.InvalidResponse, match="AuthSession"):
        client.database("db").info()
