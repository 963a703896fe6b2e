"""Credentials stay out of every repr and error message; TLS failures are typed (no I/O)."""

from __future__ import annotations

import base64
import pickle
import ssl

import pytest
import requests
import urllib3.exceptions

import cloudsync
from cloudsync._http import translate
from cloudsync.errors import ServerError, TLSError
from cloudsync.transports import MockTransport, create_transport

SECRETS = ("pa55word", base64.b64encode(b"alice:pa55word").decode(), "t0ken-value")


@pytest.mark.parametrize(
    "auth",
    [None, ("alice", "pa55word"), cloudsync.CookieAuth("alice", "pa55word"), cloudsync.BearerTokenAuth(lambda: "t0ken-value")],
    ids=["url", "basic", "cookie", "bearer"],
)
def test_no_repr_shows_credentials(auth) -> None:
    """Client, its HTTP layer, the auth, Database, every transport and a Subscription
    show no password, token or Authorization value in repr or str."""
    client = cloudsync.Client("http://alice:pa55word@couch.test:5984", auth=auth)
    if isinstance(auth, cloudsync.BearerTokenAuth):
        auth.headers(client._http)  # the token is fetched and cached now
    db = client.database("db")
    objects: list[object] = [client, client._http, client.auth, db]
    for name in ("longpoll", "continuous", "sse", "websocket"):
        transport = create_transport(name)
        transport.attach(db.changes_endpoint())
        objects.append(transport)
    objects.append(db.subscribe(MockTransport(lambda request: []), since=0))
    for obj in objects:
        for text in (repr(obj), str(obj)):
            assert not any(secret in text for secret in SECRETS), text
            assert "Authorization" not in text and "Basic " not in text


def test_ssl_verification_failure_is_tls_error() -> None:
    """requests' SSLError (a certificate that does not verify) becomes a TLSError that is
    not retried and was not sent."""
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    exc = requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "/", urllib3.exceptions.SSLError(cause)))
    error = translate(exc, "GET /db")
    assert isinstance(error, TLSError) and not error.retryable and not error.sent
    assert str(error).startswith("GET /db failed: SSLError:")


def test_server_error_retry_after_survives_pickling() -> None:
    """retry_after is a field of every HTTPError and is kept across processes."""
    error = ServerError(503, "unavailable", "later", method="GET", url="http://x/db", retry_after=2.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.retry_after, str(copy)) == (ServerError, 2.5, str(error))
