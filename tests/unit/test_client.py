"""Client construction, timeouts, logging and errors from real sockets."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
import responses

import cloudsync


def test_url_from_environment(monkeypatch):
    """Without a URL, COUCHDB_URL is used (credentials stripped)."""
    monkeypatch.setenv("COUCHDB_URL", "http://u:p@db.example:6984/")
    client = cloudsync.Client()
    assert client.url == "http://db.example:6984"
    assert isinstance(client.auth, cloudsync.BasicAuth)


@pytest.mark.parametrize("url", ["ftp://x", "localhost:5984", "http://"])
def test_bad_url_is_a_value_error(url):
    """A URL that is not http(s) with a host is refused at construction."""
    with pytest.raises(ValueError):
        cloudsync.Client(url)


def test_context_manager_closes_the_session():
    """`with Client(...)` closes the connection pool on exit."""
    with cloudsync.Client("http://couch.test") as client:
        adapter = client._http.session.get_adapter("http://couch.test")
    assert adapter.poolmanager.pools.keys() == set()


@responses.activate
def test_one_debug_line_per_request(caplog):
    """Each request logs one DEBUG line with method, path and status under 'cloudsync'."""
    caplog.set_level(logging.DEBUG, logger="cloudsync")
    responses.get("http://couch.test/db", json={})
    cloudsync.Client("http://couch.test").database("db").info()
    lines = [r.getMessage() for r in caplog.records if r.name == "cloudsync"]
    assert len(lines) == 1 and lines[0].startswith("GET /db -> 200")


def test_connection_refused_is_a_network_error_marked_unsent():
    """A closed port raises NetworkError with sent=False (safe to retry anything)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends
    client = cloudsync.Client(f"http://127.0.0.1:{port}", retry=cloudsync.RetryPolicy.never())
    with pytest.raises(cloudsync.NetworkError) as info:
        client.databases()
    assert info.value.sent is False


def test_silent_server_raises_request_timeout():
    """A server that accepts and never answers raises RequestTimeout after the read timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        done.wait(10)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    client = cloudsync.Client(f"http://127.0.0.1:{port}", timeout=(2, 0.2), retry=cloudsync.RetryPolicy.never())
    try:
        with pytest.raises(cloudsync.RequestTimeout):
            client.databases()
    finally:
        done.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_errors_survive_pickling():
    """HTTP errors keep their fields through pickle (e.g. across worker processes)."""
    import pickle

    error = cloudsync.RateLimited(429, "too_many_requests", "slow", method="GET", url="http://x/db", retry_after=3.0)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.status, copy.reason, copy.retry_after, str(copy)) == (
        cloudsync.RateLimited, 429, "slow", 3.0, str(error))


@responses.activate
def test_up_is_false_for_an_error_status():
    """A server answering /_up with an error status (503 in maintenance mode) is not up; tried once."""
    responses.get("http://couch.test/_up", status=503, json={"status": "maintenance_mode"})
    assert cloudsync.Client("http://couch.test").up() is False
    assert len(responses.calls) == 1


@responses.activate
def test_up_asks_the_root_without_an_up_endpoint():
    """A server without /_up (404) is up when it answers GET / with success."""
    responses.get("http://couch.test/_up", status=404, json={"error": "not_found"})
    responses.get("http://couch.test/", json={"couchdb": "Welcome"})
    assert cloudsync.Client("http://couch.test").up() is True


@responses.activate
def test_up_raises_for_an_answer_that_is_not_a_couchdb_one():
    """A redirect is not a server being down: up() raises InvalidResponse (the URL leads elsewhere)."""
    responses.get("http://couch.test/_up", status=302, headers={"Location": "http://elsewhere.test/"})
    with pytest.raises(cloudsync.InvalidResponse):
        cloudsync.Client("http://couch.test").up()
