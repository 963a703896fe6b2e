"""Client.up() answers whether the server is up, as a bool."""

from __future__ import annotations

import socket

import cloudsync


def test_up_is_true_for_a_running_server(embedded_url: str) -> None:
    """A server that answers /_up with success is up."""
    with cloudsync.Client(embedded_url) as client:
        assert client.up() is True


def test_up_is_false_when_nothing_listens() -> None:
    """A port nothing listens on is not up; no exception."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed below: refused from then on
    with cloudsync.Client(f"http://127.0.0.1:{port}") as client:
        assert client.up() is False
