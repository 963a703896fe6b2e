"""LongPoll, Continuous and SSE transports against `responses` bodies."""

from __future__ import annotations

import json

import pytest
import responses

from cloudsync.errors import BadRequest, InvalidResponse, NotFound, ServerError, StreamError
from cloudsync.models import Change
from cloudsync.transports import (
    ChangesRequest,
    ContinuousTransport,
    LastSeq,
    LongPollTransport,
    SSETransport,
)

from ._feed_helpers import URL, bound, query, row


# -- long poll ----------------------------------------------------------------------------------
@responses.activate
def test_longpoll_yields_changes_then_last_seq() -> None:
    """A long-poll answer gives its changes in order, then LastSeq(last_seq)."""
    body = {"results": [row(1, "a"), row(2, "b", deleted=True)], "last_seq": 2, "pending": 0}
    responses.get(URL, json=body)
    items = list(bound(LongPollTransport()).items(ChangesRequest(since=0)))
    assert items == [
        Change(1, "a", "1-a", False, None, ("1-a",)),
        Change(2, "b", "1-a", True, None, ("1-a",)),
        LastSeq(2),
    ]


@responses.activate
def test_longpoll_empty_answer_still_reports_last_seq() -> None:
    """An empty answer yields LastSeq so sparse feeds advance."""
    responses.get(URL, body=b'{"results":[],"last_seq":"9-g1"}')
    assert list(bound(LongPollTransport()).items(ChangesRequest())) == [LastSeq("9-g1")]


@responses.activate
def test_longpoll_heartbeat_newlines_tolerated() -> None:
    """Heartbeat newlines inside and around the JSON do not break parsing."""
    responses.get(URL, body=b'\n\n{"results":[\n\n' + json.dumps(row(1, "a")).encode() + b'\n],\n"last_seq":1}\n')
    items = list(bound(LongPollTransport()).items(ChangesRequest()))
    assert [type(i) for i in items] == [Change, LastSeq]


@responses.activate
def test_longpoll_query_and_headers() -> None:
    """feed, since (JSON for non-strings), heartbeat/timeout in ms, include_docs, identity encoding."""
    responses.get(URL, json={"results": [], "last_seq": 5})
    request = ChangesRequest(since=5, include_docs=True, heartbeat=7.5, timeout=30, limit=10)
    list(bound(LongPollTransport()).items(request))
    call = responses.calls[0]
    assert query(call) == {
        "feed": "longpoll", "since": "5", "include_docs": "true",
        "heartbeat": "7500", "timeout": "30000", "limit": "10",
    }
    assert call.request.headers["Accept-Encoding"] == "identity"


@responses.activate
def test_longpoll_string_seq_sent_verbatim() -> None:
    """An opaque string seq is sent as is, not JSON-quoted."""
    responses.get(URL, json={"results": [], "last_seq": "13-g1AAA"})
    list(bound(LongPollTransport()).items(ChangesRequest(since="13-g1AAA")))
    assert query(responses.calls[0])["since"] == "13-g1AAA"


@responses.activate
def test_selector_body_form_by_default() -> None:
    """A selector goes as POST {"selector": ...} with filter=_selector."""
    responses.post(URL, json={"results": [], "last_seq": 1})
    list(bound(LongPollTransport(selector_in="body")).items(ChangesRequest(selector={"type": "order"})))
    call = responses.calls[0]
    assert query(call)["filter"] == "_selector"
    assert json.loads(call.request.body) == {"selector": {"type": "order"}}
    assert call.request.headers["Content-Type"] == "application/json"


@responses.activate
def test_selector_auto_falls_back_to_query_form_once() -> None:
    """On 404 to the POST form (pouchdb-server), auto retries as GET ?selector= and remembers."""
    responses.post(URL, status=404, json={"error": "not_found"})
    responses.get(URL, json={"results": [], "last_seq": 1})
    transport = bound(LongPollTransport())
    request = ChangesRequest(selector={"type": "order"})
    list(transport.items(request))
    list(transport.items(request))
    methods = [c.request.method for c in responses.calls]
    assert methods == ["POST", "GET", "GET"]
    assert json.loads(query(responses.calls[1])["selector"]) == {"type": "order"}


@responses.activate
def test_selector_query_form() -> None:
    """selector_in='query' sends filter=_selector&selector=<json> on a GET."""
    responses.get(URL, json={"results": [], "last_seq": 1})
    list(bound(LongPollTransport(selector_in="query")).items(ChangesRequest(selector={"a": 1})))
    assert query(responses.calls[0])["filter"] == "_selector"


@responses.activate
def test_doc_ids_filter_body() -> None:
    """doc_ids go as POST {"doc_ids": [...]} with filter=_doc_ids."""
    responses.post(URL, json={"results": [], "last_seq": 1})
    list(bound(LongPollTransport(selector_in="body")).items(ChangesRequest(doc_ids=("a", "b"))))
    assert query(responses.calls[0])["filter"] == "_doc_ids"
    assert json.loads(responses.calls[0].request.body) == {"doc_ids": ["a", "b"]}


@responses.activate
def test_design_filter_with_parameters() -> None:
    """filter=ddoc/name with its parameters as query parameters (non-strings as JSON)."""
    responses.get(URL, json={"results": [], "last_seq": 1})
    request = ChangesRequest(filter="app/by_type", query_params={"type": "order", "min": 3})
    list(bound(LongPollTransport()).items(request))
    q = query(responses.calls[0])
    assert (q["filter"], q["type"], q["min"]) == ("app/by_type", "order", "3")


@pytest.mark.parametrize("status, error", [(400, BadRequest), (404, NotFound), (500, ServerError)])
@responses.activate
def test_error_status_raises_typed_error(status, error) -> None:
    """Error statuses raise the error tree's classes."""
    responses.get(URL, status=status, json={"error": "x", "reason": "y"})
    with pytest.raises(error):
        list(bound(LongPollTransport()).items(ChangesRequest()))


@responses.activate
def test_longpoll_garbage_is_invalid_response() -> None:
    """A body that is not the expected JSON raises InvalidResponse."""
    responses.get(URL, body=b'{"results": [')
    with pytest.raises(InvalidResponse):
        list(bound(LongPollTransport()).items(ChangesRequest()))


@responses.activate
def test_bytes_received_counted() -> None:
    """Every byte read counts for liveness."""
    body = b'\n\n{"results":[],"last_seq":1}'
    responses.get(URL, body=body)
    transport = bound(LongPollTransport())
    list(transport.items(ChangesRequest()))
    assert transport.bytes_received == len(body)


# -- continuous -----------------------------------------------------------------------------------
@responses.activate
def test_continuous_lines_heartbeats_and_last_seq() -> None:
    """One row per line, empty lines skipped, a last_seq line ends the feed cleanly."""
    lines = [json.dumps(row(1, "a")), "", "", json.dumps(row(2, "b")), json.dumps({"last_seq": 2})]
    responses.get(URL, body=("\n".join(lines) + "\n").encode())
    items = list(bound(ContinuousTransport(catch_up=False)).items(ChangesRequest()))
    assert [getattr(i, "id", None) for i in items] == ["a", "b", None]
    assert items[-1] == LastSeq(2)
    assert query(responses.calls[0])["feed"] == "continuous"


@responses.activate
def test_continuous_partial_last_line_dropped() -> None:
    """A line without its newline at the end (truncated body) is never parsed."""
    responses.get(URL, body=(json.dumps(row(1, "a")) + "\n" + '{"seq":2,"id":"b","chan').encode())
    items = list(bound(ContinuousTransport(catch_up=False)).items(ChangesRequest()))
    assert [i.id for i in items] == ["a"]


@responses.activate
def test_continuous_error_row_is_stream_error() -> None:
    """An error object after the 200 (CouchDB) raises StreamError."""
    responses.get(URL, body=b'{"error":"badarg","reason":"x"}\n')
    with pytest.raises(StreamError):
        list(bound(ContinuousTransport(catch_up=False)).items(ChangesRequest()))


# -- SSE ----------------------------------------------------------------------------------------------
@responses.activate
def test_sse_rows_heartbeats_and_last_event_id_header() -> None:
    """data rows become changes, heartbeat events are skipped, since goes as Last-Event-ID too."""
    body = (
        b": hello\r\n\r\n"
        b'data: {"seq":4,"id":"a","changes":[{"rev":"1-a"}]}\r\nid: 4\r\n\r\n'
        b"event: heartbeat\r\ndata:\r\n\r\n"
        b"retry: 2500\r\n\r\n"
    )
    responses.get(URL, body=body, content_type="text/event-stream")
    transport = bound(SSETransport())
    items = list(transport.items(ChangesRequest(since=3)))
    assert [(i.seq, i.id) for i in items] == [(4, "a")]
    call = responses.calls[0]
    assert call.request.headers["Last-Event-ID"] == "3"
    assert call.request.headers["Accept"] == "text/event-stream"
    assert query(call)["feed"] == "eventsource"
    assert transport.retry == 2.5


@responses.activate
def test_sse_event_id_is_seq_when_row_has_none() -> None:
    """A row without seq takes the event's (persisting) id."""
    body = b'id: 7-x\ndata: {"id":"a","changes":[{"rev":"1-a"}]}\n\ndata: {"id":"b","changes":[{"rev":"1-b"}]}\n\n'
    responses.get(URL, body=body, content_type="text/event-stream")
    items = list(bound(SSETransport()).items(ChangesRequest()))
    assert [(i.seq, i.id) for i in items] == [("7-x", "a"), ("7-x", "b")]


@responses.activate
def test_sse_last_seq_event() -> None:
    """An 'event: last_seq' event becomes a LastSeq marker."""
    responses.get(URL, body=b"event: last_seq\ndata: 12\n\n", content_type="text/event-stream")
    assert list(bound(SSETransport()).items(ChangesRequest())) == [LastSeq(12)]


@responses.activate
def test_feed_renews_a_cookie_session_after_a_401() -> None:
    """A feed answered 401 (session expired) logs in again and reopens once, with the new cookie."""
    from responses import matchers

    from cloudsync.auth import CookieAuth

    for cookie in ("old", "new"):
        responses.post("http://couch.test/_session", json={"ok": True},
                       headers={"Set-Cookie": f"AuthSession={cookie}; Path=/"})
    responses.get(URL, status=401, json={"error": "unauthorized"},
                  match=[matchers.header_matcher({"Cookie": "AuthSession=old"})])
    responses.get(URL, json={"results": [row(1, "a")], "last_seq": 1},
                  match=[matchers.header_matcher({"Cookie": "AuthSession=new"})])
    transport = bound(LongPollTransport(), auth=CookieAuth("alice", "pw"))
    items = list(transport.items(ChangesRequest(since=0)))
    assert [item.id for item in items if isinstance(item, Change)] == ["a"]
