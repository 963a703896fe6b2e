"""Retries, Retry-After and error translation in the HTTP layer (``responses`` fakes)."""

from __future__ import annotations

import pytest
import requests
import responses
import urllib3.exceptions

import cloudsync

URL = "http://couch.test"


class FakeSleep:
    """Records the waits the client asked for instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def client(sleep: FakeSleep) -> cloudsync.Client:
    policy = cloudsync.RetryPolicy(attempts=4, backoff=0.5, max_backoff=2.0, sleep=sleep, random=lambda: 1.0)
    return cloudsync.Client(URL, retry=policy)


def refused() -> requests.ConnectionError:
    return requests.ConnectionError(urllib3.exceptions.NewConnectionError(None, "Connection refused"))


def reset() -> requests.ConnectionError:
    return requests.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )


@responses.activate
def test_429_waits_for_retry_after_then_succeeds(client, sleep):
    """A 429 is retried after exactly the server's Retry-After seconds."""
    responses.get(f"{URL}/db", status=429, headers={"Retry-After": "7"}, json={"error": "too_many_requests"})
    responses.get(f"{URL}/db", json={"db_name": "db"})
    assert client.database("db").info() == {"db_name": "db"}
    assert sleep.calls == [7.0]


@responses.activate
def test_429_is_retried_for_post_too(client, sleep):
    """A 429 means nothing was done, so even a non-idempotent POST is retried."""
    responses.post(f"{URL}/db/_bulk_docs", status=429, json={"error": "too_many_requests"})
    responses.post(f"{URL}/db/_bulk_docs", status=201, json=[{"ok": True, "id": "a", "rev": "1-x"}])
    assert list(client.database("db").bulk([{"_id": "a"}]))[0].ok
    assert len(responses.calls) == 2


@responses.activate
def test_retry_after_beyond_the_cap_raises_rate_limited_at_once(sleep):
    """A Retry-After longer than max_retry_after raises RateLimited carrying the hint, without waiting."""
    client = cloudsync.Client(URL, retry=cloudsync.RetryPolicy(max_retry_after=5, sleep=sleep))
    responses.get(f"{URL}/db", status=429, headers={"Retry-After": "120"}, json={"error": "too_many_requests", "reason": "slow down"})
    with pytest.raises(cloudsync.RateLimited) as info:
        client.database("db").info()
    assert info.value.retry_after == 120.0
    assert info.value.reason == "slow down"
    assert sleep.calls == []


@responses.activate
def test_503_storm_gives_up_after_the_attempts(client, sleep):
    """An idempotent GET is tried `attempts` times through a 503 storm, then ServerError is raised."""
    responses.get(f"{URL}/db/doc", status=503, json={"error": "unavailable", "reason": "busy"})
    with pytest.raises(cloudsync.ServerError) as info:
        client.database("db").get("doc")
    assert info.value.status == 503
    assert len(responses.calls) == 4
    # Capped full jitter with random() == 1.0: 0.5, 1.0, 2.0 (capped at max_backoff).
    assert sleep.calls == [0.5, 1.0, 2.0]


@responses.activate
def test_5xx_is_not_retried_for_a_sent_post(client, sleep):
    """A POST that reached the server and got a 5xx is not retried: it may have been applied."""
    responses.post(f"{URL}/db/_bulk_docs", status=500, json={"error": "unknown_error"})
    with pytest.raises(cloudsync.ServerError):
        list(client.database("db").bulk([{"_id": "a"}]))
    assert len(responses.calls) == 1
    assert sleep.calls == []


@responses.activate
def test_post_that_was_never_sent_is_retried(client, sleep):
    """A refused connection means the POST never left: it is safe to retry."""
    responses.post(f"{URL}/db/_bulk_docs", body=refused())
    responses.post(f"{URL}/db/_bulk_docs", status=201, json=[{"ok": True, "id": "a", "rev": "1-x"}])
    assert list(client.database("db").bulk([{"_id": "a"}]))[0].rev == "1-x"
    assert len(sleep.calls) == 1


@responses.activate
def test_connection_reset_after_sending_a_post_is_not_retried(client, sleep):
    """A reset after a POST was sent raises NetworkError, chained from the requests error."""
    responses.post(f"{URL}/db/_bulk_docs", body=reset())
    with pytest.raises(cloudsync.NetworkError) as info:
        list(client.database("db").bulk([{"_id": "a"}]))
    assert info.value.sent is True
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert len(responses.calls) == 1


@responses.activate
def test_connection_reset_on_get_is_retried(client, sleep):
    """An idempotent GET survives a connection reset."""
    responses.get(f"{URL}/db/doc", body=reset())
    responses.get(f"{URL}/db/doc", json={"_id": "doc", "_rev": "1-a"})
    assert client.database("db").get("doc")["_rev"] == "1-a"


@responses.activate
def test_409_is_never_retried(client, sleep):
    """A conflict is final: raised at once as Conflict."""
    responses.put(f"{URL}/db/doc", status=409, json={"error": "conflict", "reason": "Document update conflict"})
    with pytest.raises(cloudsync.Conflict):
        client.database("db").update({"_id": "doc", "_rev": "1-a"})
    assert len(responses.calls) == 1


@responses.activate
def test_truncated_json_body_is_invalid_response_and_retried(client, sleep):
    """A body cut short is InvalidResponse; a GET is retried and then succeeds."""
    responses.get(f"{URL}/db/doc", body='{"_id": "doc", "_re')
    responses.get(f"{URL}/db/doc", json={"_id": "doc", "_rev": "1-a"})
    assert client.database("db").get("doc")["_id"] == "doc"
    assert len(responses.calls) == 2


@responses.activate
def test_non_json_body_raises_invalid_response(client, sleep):
    """An HTML page where JSON was expected raises InvalidResponse once attempts run out."""
    responses.get(f"{URL}/db", body="<html>proxy error</html>", content_type="text/html")
    with pytest.raises(cloudsync.InvalidResponse, match="expected JSON"):
        client.database("db").info()
    assert len(responses.calls) == 4


@responses.activate
def test_body_shorter_than_content_length_is_a_stream_error(sleep):
    """A body shorter than its Content-Length is a StreamError, not a urllib3 exception."""
    client = cloudsync.Client(URL, retry=cloudsync.RetryPolicy.never())
    responses.get(f"{URL}/db", body=b'{"a": 1}', headers={"Content-Length": "100"}, auto_calculate_content_length=False)
    with pytest.raises(cloudsync.StreamError, match="IncompleteRead") as info:
        client.database("db").info()
    assert info.value.retryable


@responses.activate
def test_http_error_carries_status_error_reason_and_request_id():
    """An error status becomes a typed error with CouchDB's error/reason and the request id."""
    client = cloudsync.Client(URL)
    responses.get(
        f"{URL}/db/missing",
        status=404,
        json={"error": "not_found", "reason": "missing"},
        headers={"X-Couch-Request-ID": "abc123"},
    )
    with pytest.raises(cloudsync.NotFound) as info:
        client.database("db").get("missing")
    error = info.value
    assert (error.status, error.error, error.reason, error.request_id) == (404, "not_found", "missing", "abc123")
    assert "abc123" in str(error) and "GET" in str(error)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, cloudsync.BadRequest), (401, cloudsync.Unauthorized), (403, cloudsync.Forbidden),
     (404, cloudsync.NotFound), (409, cloudsync.Conflict), (412, cloudsync.PreconditionFailed),
     (429, cloudsync.RateLimited), (500, cloudsync.ServerError), (503, cloudsync.ServerError)],
)
@responses.activate
def test_each_status_maps_to_its_class(status, cls):
    """Every documented status raises its documented class, all under HTTPError."""
    client = cloudsync.Client(URL, retry=cloudsync.RetryPolicy.never())
    responses.get(f"{URL}/db", status=status, json={"error": "e", "reason": "r"})
    with pytest.raises(cls) as info:
        client.database("db").info()
    assert isinstance(info.value, cloudsync.HTTPError)
    assert info.value.status == status


def test_retry_policy_rejects_zero_attempts():
    """A policy that would never send anything is refused."""
    with pytest.raises(ValueError):
        cloudsync.RetryPolicy(attempts=0)


@responses.activate
def test_no_retry_starts_after_max_time(sleep):
    """With the time budget spent, the first failure is raised without waiting."""
    client = cloudsync.Client(URL, retry=cloudsync.RetryPolicy(max_time=0.0, sleep=sleep))
    responses.get(f"{URL}/db", status=503, json={"error": "unavailable"})
    with pytest.raises(cloudsync.ServerError):
        client.database("db").info()
    assert len(responses.calls) == 1 and sleep.calls == []


@responses.activate
def test_success_after_retries_is_returned(client, sleep):
    """Two 503s then a 200: the 200's body is returned after two waits."""
    responses.get(f"{URL}/db", status=503, json={})
    responses.get(f"{URL}/db", status=503, json={})
    responses.get(f"{URL}/db", json={"db_name": "db"})
    assert client.database("db").info() == {"db_name": "db"}
    assert sleep.calls == [0.5, 1.0]


def testcaused_by_walks_past_a_string_reason():
    """An HTTPError's ``reason`` is a str: walking its chain neither fails nor matches."""
    from cloudsync.errors import ServerError, caused_by

    error = ServerError(503, "service_unavailable", "try later")
    assert caused_by(error, ConnectionRefusedError) is False
    error.__cause__ = ConnectionRefusedError()
    assert caused_by(error, ConnectionRefusedError) is True


def test_tls_eof_mid_handshake_is_a_retryable_network_error():
    """A TLS connection dropped mid-handshake (a server restarting) is retried, unlike a
    certificate that fails verification."""
    import ssl

    import requests
    import urllib3

    from cloudsync._http import translate
    from cloudsync.errors import NetworkError, TLSError

    eof = requests.exceptions.SSLError(urllib3.exceptions.SSLError(ssl.SSLEOFError(8, "EOF occurred")))
    error = translate(eof)
    assert isinstance(error, NetworkError) and not isinstance(error, TLSError)
    assert error.retryable


def test_certificate_verification_failure_is_a_tls_error():
    """A certificate that fails verification is a TLSError, not retried."""
    import ssl

    import requests
    import urllib3

    from cloudsync._http import translate
    from cloudsync.errors import TLSError

    cause = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    error = translate(requests.exceptions.SSLError(urllib3.exceptions.SSLError(cause)))
    assert isinstance(error, TLSError) and not error.retryable
