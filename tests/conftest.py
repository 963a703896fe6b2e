"""Session-wide servers for the integration tests: each starts once and stops by PID."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

import cloudsync
from tests._servers.pouchdb import PouchDBServer

SERVERS = ("pouchdb", "embedded")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="also run the tests marked soak (minutes each)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak tests stay out of the suite (and so out of CI) unless asked for with --soak."""
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="a soak run: pass --soak (bash scripts/soak)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
_names = itertools.count()


@pytest.fixture(scope="session")
def pouchdb_url() -> Iterator[str]:
    """URL of a pouchdb-server 4.2.0 (in memory) for the whole session."""
    with PouchDBServer() as server:
        yield server.url


@pytest.fixture(scope="session")
def embedded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of cloudsync's embedded server (SQLite in a temp dir) for the whole session."""
    testing = pytest.importorskip("cloudsync.server.testing")
    with testing.serve(data_dir=tmp_path_factory.mktemp("embedded")) as server:
        yield server.url


@pytest.fixture
def restartable(tmp_path):
    """An embedded server of this test's own, which may be restarted (same port and data
    dir) or killed."""
    testing = pytest.importorskip("cloudsync.server.testing")
    with testing.serve(data_dir=tmp_path / "data") as server:
        yield server


ADMIN = ("admin", "s3cret-pw")


@pytest.fixture(scope="session")
def secured_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an embedded server that requires the ADMIN credentials. Many tests send
    wrong ones on purpose: its login throttle is set out of their way (the throttle has
    tests of its own)."""
    testing = pytest.importorskip("cloudsync.server.testing")
    with testing.serve(data_dir=tmp_path_factory.mktemp("secured"), admin=ADMIN,
                       extra_args=("--max-login-failures", "0")) as server:
        yield server.url


@pytest.fixture(params=SERVERS)
def server_url(request: pytest.FixtureRequest) -> str:
    """Each integration test runs against every server in SERVERS."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def server_kind(server_url: str, request: pytest.FixtureRequest) -> str:
    """Which server ``server_url`` is (``"pouchdb"`` or ``"embedded"``)."""
    return request.node.callspec.params["server_url"]


@pytest.fixture
def client(server_url: str) -> Iterator[cloudsync.Client]:
    with cloudsync.Client(server_url, timeout=(5, 30)) as c:
        yield c


@pytest.fixture
def db(client: cloudsync.Client) -> Iterator[cloudsync.Database]:
    """A fresh, uniquely named database, deleted afterwards."""
    name = f"test-{os.getpid()}-{next(_names)}"
    database = client.create_database(name)
    try:
        yield database
    finally:
        client.delete_database(name, missing_ok=True)


JWT_SECRET = "jwt-test-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def jwt_server(tmp_path_factory: pytest.TempPathFactory):
    """An embedded server that accepts HS256 JWTs signed with JWT_SECRET (`--jwt-secret`),
    and the ADMIN login. Its login throttle is out of the way of tests that send bad
    credentials on purpose."""
    testing = pytest.importorskip("cloudsync.server.testing")
    with testing.serve(data_dir=tmp_path_factory.mktemp("jwt"), admin=ADMIN,
                       extra_args=("--jwt-secret", JWT_SECRET, "--max-login-failures", "0")) as server:
        yield server
