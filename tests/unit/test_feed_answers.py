"""Answers that are not a feed (a redirect, a 204, an HTML page) are retryable errors,
never a clean end; Retry-After is honoured on a 503 (``responses`` fakes)."""

from __future__ import annotations

import pytest
import responses

import cloudsync
from cloudsync.errors import InvalidResponse, ServerError
from cloudsync.subscription import ReconnectPolicy
from cloudsync.transports import ChangesRequest, ContinuousTransport, LongPollTransport, SSETransport

from ._feed_helpers import URL, bound, line, row

HTML = b"<html><body>Please log in</body></html>"


def sse() -> SSETransport:
    return bound(SSETransport())


def continuous() -> ContinuousTransport:
    return bound(ContinuousTransport(catch_up=False))


@pytest.mark.parametrize("make", [sse, continuous], ids=["sse", "continuous"])
@pytest.mark.parametrize("status", [301, 302, 307])
@responses.activate
def test_redirect_is_a_retryable_invalid_response(make, status) -> None:
    """A 3xx is not followed and not a clean end: InvalidResponse (retryable) naming the
    target, without its credentials."""
    responses.get(URL, status=status, headers={"Location": "http://user:pw@elsewhere.test/x"})
    with pytest.raises(InvalidResponse, match=f"^{status} redirect to http://elsewhere.test/x: not followed") as info:
        list(make().items(ChangesRequest()))
    assert info.value.retryable
    assert len(responses.calls) == 1
    assert "pw" not in str(info.value)


@pytest.mark.parametrize("make", [sse, continuous], ids=["sse", "continuous"])
@responses.activate
def test_204_is_a_retryable_invalid_response(make) -> None:
    """A 204 (no content) is no feed: InvalidResponse, not a clean end."""
    responses.get(URL, status=204)
    with pytest.raises(InvalidResponse, match="^204 No Content: no content, not a"):
        list(make().items(ChangesRequest()))


@pytest.mark.parametrize("make", [sse, continuous], ids=["sse", "continuous"])
@responses.activate
def test_html_200_is_a_retryable_invalid_response(make) -> None:
    """A 200 HTML page (a captive portal, a proxy's login page) is no feed."""
    responses.get(URL, body=HTML, content_type="text/html")
    with pytest.raises(InvalidResponse, match=r"^200 OK: Content-Type text/html, not a \w+ feed \(GET http://couch.test/db/_changes\)"):
        list(make().items(ChangesRequest()))


@responses.activate
def test_sse_wants_an_event_stream() -> None:
    """An eventsource request answered with JSON (a server without the feed) is an error."""
    responses.get(URL, json={"results": [], "last_seq": 1})
    with pytest.raises(InvalidResponse, match="Content-Type application/json, not a eventsource feed"):
        list(sse().items(ChangesRequest()))


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "text/plain; charset=utf-8"])
@responses.activate
def test_continuous_accepts_json_and_couchdbs_text_plain(content_type) -> None:
    """Continuous accepts what real servers send: application/json (CouchDB, pouchdb-server,
    the embedded server) and text/plain (CouchDB when JSON is not in Accept)."""
    responses.get(URL, body=line(row(1, "a")) + b"\n", content_type=content_type)
    assert [c.id for c in continuous().items(ChangesRequest())] == ["a"]


@responses.activate
def test_longpoll_redirect_is_an_error() -> None:
    """The long poll takes a 3xx for an error as well."""
    responses.get(URL, status=302, headers={"Location": "http://couch.test/login"})
    with pytest.raises(InvalidResponse, match="^302 redirect"):
        list(bound(LongPollTransport()).items(ChangesRequest()))


@responses.activate
def test_subscription_backs_off_on_a_redirecting_feed() -> None:
    """A feed that always redirects makes the subscription back off (and, with
    attempts, give up) instead of reconnecting in a tight loop."""
    responses.get("http://couch.test/db", json={"update_seq": 0})
    responses.get(URL, status=302, headers={"Location": "http://couch.test/login"})
    waits: list[float] = []
    client = cloudsync.Client("http://couch.test")
    sub = client.database("db").subscribe(
        "sse", reconnect=ReconnectPolicy(sleep=waits.append, attempts=4, random=lambda: 1.0)
    )
    with pytest.raises(InvalidResponse):
        next(iter(sub))
    sub.close()
    assert waits == [0.5, 1.0, 2.0]
    assert len([c for c in responses.calls if "_changes" in c.request.url]) == 4


@responses.activate
def test_document_client_takes_a_redirect_for_an_error() -> None:
    """The document client does not parse a 3xx's body as JSON: InvalidResponse."""
    responses.get("http://couch.test/db", status=301, body=HTML, headers={"Location": "https://couch.test/db"})
    client = cloudsync.Client("http://couch.test", retry=cloudsync.RetryPolicy.never())
    with pytest.raises(InvalidResponse, match=r"^301 redirect to https://couch.test/db: not followed \(GET http://couch.test/db\)"):
        client.database("db").info()


# -- Retry-After on 503 ----------------------------------------------------------------------------------
@responses.activate
def test_503_carries_retry_after() -> None:
    """A 503's Retry-After (seconds or an HTTP date) is on the ServerError."""
    responses.get("http://couch.test/db", status=503, headers={"Retry-After": "4"}, json={"error": "unavailable"})
    client = cloudsync.Client("http://couch.test", retry=cloudsync.RetryPolicy.never())
    with pytest.raises(ServerError) as info:
        client.database("db").info()
    assert info.value.retry_after == 4.0


@responses.activate
def test_503_retry_waits_for_retry_after() -> None:
    """The document client waits exactly a 503's Retry-After before retrying."""
    responses.get("http://couch.test/db", status=503, headers={"Retry-After": "3"}, json={"error": "unavailable"})
    responses.get("http://couch.test/db", json={"db_name": "db"})
    waits: list[float] = []
    client = cloudsync.Client("http://couch.test", retry=cloudsync.RetryPolicy(sleep=waits.append, random=lambda: 0.0))
    assert client.database("db").info() == {"db_name": "db"}
    assert waits == [3.0]


@responses.activate
def test_503_retry_after_beyond_the_cap_is_raised_at_once() -> None:
    """A 503 asking for longer than max_retry_after is raised without waiting."""
    responses.get("http://couch.test/db", status=503, headers={"Retry-After": "600"}, json={"error": "unavailable"})
    waits: list[float] = []
    client = cloudsync.Client("http://couch.test", retry=cloudsync.RetryPolicy(sleep=waits.append, max_retry_after=60))
    with pytest.raises(ServerError):
        client.database("db").info()
    assert waits == []


@responses.activate
def test_feed_503_carries_retry_after() -> None:
    """A feed answered 503 raises a ServerError with retry_after for the subscription's backoff."""
    responses.get(URL, status=503, headers={"Retry-After": "9"}, json={"error": "unavailable"})
    with pytest.raises(ServerError) as info:
        list(sse().items(ChangesRequest()))
    assert info.value.retry_after == 9.0
