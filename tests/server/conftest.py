"""Fixtures: one cloudsync server subprocess per session, a fresh database per test."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

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


@pytest.fixture(scope="session")
def seeded_db(server: ServerProcess) -> Callable[[str, list[dict]], str]:
    """Make database `name` holding `docs` on the session server; returns its URL (for
    module-scoped fixtures whose tests only read)."""

    def make(name: str, docs: list[dict]) -> str:
        url = f"{server.url}/{name}"
        with requests.Session() as http:
            assert http.put(url).status_code == 201
            assert http.post(url + "/_bulk_docs", json={"docs": docs}).status_code == 201
        return url

    return make


@pytest.fixture
def unused_db(server: ServerProcess) -> str:
    """The URL of a database that does not exist yet."""
    return f"{server.url}/test-{next(_names)}"


@pytest.fixture
def db(unused_db: str, http: requests.Session) -> str:
    """The URL of a new, empty database."""
    assert http.put(unused_db).status_code == 201
    return unused_db


#: The hostile-input suite's server: short budgets, so a case that hits one ends fast.
HARDENED_ARGS = ("--query-timeout", "2", "--idle-timeout", "2", "--allow-host", "dev.example",
                 "--allow-origin", "http://app.example")


@pytest.fixture(scope="session")
def hardened() -> Iterator[ServerProcess]:
    """A no-admin server with a 2 s query timeout and idle timeout, one extra allowed Host
    and one allowed Origin."""
    with serve(memory=True, extra_args=HARDENED_ARGS) as proc:
        yield proc


@pytest.fixture(scope="session")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with an admin user and a data directory (for the session secret file)."""
    with serve(tmp_path_factory.mktemp("secured"), admin=("admin", "pw")) as proc:
        yield proc
