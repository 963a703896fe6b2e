"""TLS against a self-signed certificate on 127.0.0.1 (a TLS proxy in front of the
embedded server): verification is on by default and a failure is a TLSError, never
retried, on the document client and every transport; ``verify=`` reaches them all."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

import cloudsync
from cloudsync.errors import NetworkError, TLSError
from cloudsync.subscription import ReconnectPolicy
from tests._servers.tls import TLSProxy, make_cert

pytestmark = pytest.mark.integration

TRANSPORTS = ("longpoll", "continuous", "sse", "websocket")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """(cert.pem, key.pem) of a self-signed certificate for 127.0.0.1."""
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls(cert, embedded_url):
    """A TLS proxy (the self-signed certificate) in front of the embedded server."""
    parts = urlsplit(embedded_url)
    proxy = TLSProxy(*cert, (parts.hostname, parts.port))
    yield proxy
    proxy.close()


def options(transport: str) -> dict:
    return {"min_heartbeat": 0} if transport == "websocket" else {}


def test_tls_error_is_a_network_error_not_retried() -> None:
    """TLSError is a NetworkError whose retryable is False, exported at the top level."""
    assert issubclass(cloudsync.TLSError, NetworkError)
    assert cloudsync.TLSError is TLSError and not TLSError.retryable


def test_document_client_refuses_an_unknown_certificate(tls) -> None:
    """With the default verify=True a self-signed certificate raises TLSError, once (no retries)."""
    waits: list[float] = []
    client = cloudsync.Client(tls.url, retry=cloudsync.RetryPolicy(sleep=waits.append))
    with pytest.raises(TLSError, match="CERTIFICATE_VERIFY_FAILED"):
        client.databases()
    assert waits == []
    assert tls.handshakes == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_refuses_an_unknown_certificate(tls, transport) -> None:
    """Each transport raises TLSError for the self-signed certificate, and the
    subscription gives up at once (not retryable)."""
    db = cloudsync.Client(tls.url).database("anything")
    sub = db.subscribe(transport, since=0, reconnect=ReconnectPolicy(backoff=0.01), transport_options=options(transport))
    try:
        with pytest.raises(TLSError):
            next(iter(sub))
        assert sub.stats.errors == 1
    finally:
        sub.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_verify_with_the_ca_bundle_reaches_every_transport(tls, cert, transport) -> None:
    """verify=<CA bundle path> makes documents and each transport trust the certificate."""
    with cloudsync.Client(tls.url, verify=str(cert[0])) as client:
        name = f"tls-{transport}-{os.getpid()}"
        db = client.create_database(name)
        try:
            sub = db.subscribe(transport, heartbeat=0.5, transport_options=options(transport))
            try:
                db.create({"_id": "over-tls"})
                assert next(iter(sub)).id == "over-tls"
            finally:
                sub.close()
        finally:
            client.delete_database(name)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("transport", ["continuous", "websocket"])
def test_verify_false_turns_verification_off(tls, transport) -> None:
    """verify=False accepts any certificate, on documents and transports."""
    with cloudsync.Client(tls.url, verify=False) as client:
        name = f"tls-off-{transport}-{os.getpid()}"
        db = client.create_database(name)
        try:
            sub = db.subscribe(transport, since=0, heartbeat=0.5, transport_options=options(transport))
            try:
                db.create({"_id": "unverified"})
                assert next(iter(sub)).id == "unverified"
            finally:
                sub.close()
        finally:
            client.delete_database(name)
