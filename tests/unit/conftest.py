"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ._sockets import ScriptServer


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptServer]]:
    """Start loopback ScriptServers; all closed after the test."""
    servers: list[ScriptServer] = []

    def start(script):
        server = ScriptServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
