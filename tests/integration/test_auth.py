"""Authentication against a server that requires credentials (the embedded server with an admin)."""

from __future__ import annotations

import pytest

import cloudsync
from tests.conftest import ADMIN

pytestmark = pytest.mark.integration


def test_basic_auth_from_url_credentials(secured_url):
    """user:password in the URL authenticates every request."""
    user, password = ADMIN
    url = secured_url.replace("http://", f"http://{user}:{password}@")
    with cloudsync.Client(url) as client:
        client.create_database("basic-db", exist_ok=True)
        assert "basic-db" in client.databases()


def test_cookie_session_logs_in_and_works(secured_url):
    """CookieAuth obtains an AuthSession cookie from /_session and uses it."""
    with cloudsync.Client(secured_url, auth=cloudsync.CookieAuth(*ADMIN)) as client:
        db = client.create_database("cookie-db", exist_ok=True)
        assert db.get(db.create({"x": 1})["_id"])["x"] == 1


def test_cookie_session_is_renewed_when_the_server_forgets_it():
    """A session the server no longer accepts (a restart with a new secret) is renewed
    after the 401 and the call succeeds."""
    testing = pytest.importorskip("cloudsync.server.testing")
    auth = cloudsync.CookieAuth(*ADMIN)
    with testing.serve(memory=True, admin=ADMIN) as server, cloudsync.Client(server.url, auth=auth) as client:
        client.databases()
        first = auth._cookie
        server.restart()  # in memory: a new signing secret, so the old cookie is invalid
        client.databases()  # raises Unauthorized unless the 401 led to a new session
        assert auth._cookie != first


def test_wrong_password_is_unauthorized(secured_url):
    """Bad credentials raise Unauthorized, and the password is not in the message."""
    with cloudsync.Client(secured_url, auth=("admin", "wrong-pw-123")) as client, pytest.raises(cloudsync.Unauthorized) as info:
        client.databases()
    assert "wrong-pw-123" not in str(info.value)


def test_no_credentials_is_unauthorized(secured_url):
    """A server with users refuses anonymous requests."""
    with cloudsync.Client(secured_url) as client, pytest.raises(cloudsync.Unauthorized):
        client.databases()
