"""Fixtures: one cloudsync server subprocess per session, a fresh database per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import requests

from cloudsync.server.testing import ServerProcess, serve

_names = itertools.count()


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    with serve(memory=True) as proc:
        yield proc


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["Accept-Encoding"] = "identity"
        yield s


@pytest.fixture
def db(server: ServerProcess, http: requests.Session) -> str:
    """The URL of a new, empty database."""
    url = f"{server.url}/test-{next(_names)}"
    assert http.put(url).status_code == 201
    return url
