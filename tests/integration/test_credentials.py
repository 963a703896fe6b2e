"""Credentials never leak: not in a log line at any level, a repr, or an error message,
for a whole session with basic, URL, cookie and bearer auth through every transport
against the embedded server with an admin."""

from __future__ import annotations

import base64
import logging
import os
import traceback
from urllib.parse import urlsplit

import pytest

import cloudsync
from cloudsync.errors import CloudSyncError, Unauthorized
from tests.conftest import ADMIN

pytestmark = pytest.mark.integration

TRANSPORTS = ("longpoll", "continuous", "sse", "websocket")
TOKEN = "bearer-t0ken-that-must-not-leak"


def with_creds_in_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{ADMIN[0]}:{ADMIN[1]}@{parts.netloc}"


def texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured log line, formatted with its traceback if any."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(record) for record in caplog.records]


def described(error: BaseException) -> list[str]:
    """str, repr and the whole formatted chain of ``error``."""
    return [str(error), repr(error), "".join(traceback.format_exception(error))]


def session(client: cloudsync.Client, name: str) -> list[str]:
    """Create a database, read one change through every transport; the reprs seen."""
    seen = [repr(client), repr(client._http), repr(client.auth)]
    db = client.create_database(name, exist_ok=True)
    seen.append(repr(db))
    try:
        for transport in TRANSPORTS:
            options = {"min_heartbeat": 0} if transport == "websocket" else {}
            sub = db.subscribe(transport, heartbeat=0.5, transport_options=options)
            try:
                db.create({"via": transport})
                change = next(iter(sub))
                seen += [repr(sub), repr(sub.transport), repr(change)]
            finally:
                sub.close()
    finally:
        client.delete_database(name, missing_ok=True)
    return seen


def assert_clean(blobs: list[str], secrets: list[str]) -> None:
    for blob in blobs:
        for secret in secrets:
            assert secret not in blob, f"credential in: {blob[:300]}"


def basic_secrets() -> list[str]:
    token = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    return [ADMIN[1], token]


@pytest.mark.parametrize("kind", ["tuple", "url"])
def test_basic_auth_session_leaks_nothing(secured_url, caplog, kind) -> None:
    """Basic auth (given as a tuple, or in the URL) through every transport: the password
    and the Authorization value appear in no DEBUG log line, repr or message."""
    caplog.set_level(logging.DEBUG)
    if kind == "url":
        client = cloudsync.Client(with_creds_in_url(secured_url))
    else:
        client = cloudsync.Client(secured_url, auth=ADMIN)
    with client:
        seen = session(client, f"leak-basic-{kind}-{os.getpid()}")
    assert len(caplog.records) > 20  # DEBUG really was captured
    assert_clean(seen + texts(caplog), basic_secrets())


def test_cookie_auth_session_leaks_nothing(secured_url, caplog) -> None:
    """A cookie session through every transport: neither the password nor the
    AuthSession value appears in any log line or repr."""
    caplog.set_level(logging.DEBUG)
    auth = cloudsync.CookieAuth(*ADMIN)
    with cloudsync.Client(secured_url, auth=auth) as client:
        seen = session(client, f"leak-cookie-{os.getpid()}")
        cookie = auth._cookie
    assert cookie
    assert_clean(seen + texts(caplog), [ADMIN[1], cookie])


def test_refused_credentials_leak_nothing_in_errors(secured_url, caplog) -> None:
    """Wrong basic credentials and a bearer token the server refuses, on documents and
    every transport: the Unauthorized errors (and their causes) name neither."""
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with cloudsync.Client(secured_url, auth=(ADMIN[0], "wrong-pass-word")) as wrong, \
            cloudsync.Client(secured_url, auth=cloudsync.BearerTokenAuth(lambda: TOKEN)) as bearer:
        for client in (wrong, bearer):
            with pytest.raises(Unauthorized) as info:
                client.databases()
            errors.append(info.value)
            for transport in TRANSPORTS:
                sub = client.database("anything").subscribe(transport, since=0)
                try:
                    next(iter(sub))
                except CloudSyncError as exc:
                    errors.append(exc)
                finally:
                    sub.close()
            assert_clean([repr(client), repr(client.auth)], [TOKEN, "wrong-pass-word"])
    assert len(errors) == 10 and all(isinstance(e, Unauthorized) for e in errors), errors
    blobs = [text for error in errors for text in described(error)] + texts(caplog)
    assert_clean(blobs, [TOKEN, "wrong-pass-word", base64.b64encode(f"{ADMIN[0]}:wrong-pass-word".encode()).decode()])
