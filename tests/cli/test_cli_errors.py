"""How the commands connect and fail: `--url` / `COUCHDB_URL`, credentials from the
environment, and cloudsync's errors as one line on stderr (no traceback, no secret)."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import ADMIN

from .conftest import cli_env, run_cli

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "wrong-secret-pw"


def assert_one_error_line(result, status=1):
    assert result.returncode == status, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_is_one_line():
    """A server that refuses connections: exit 1, one line saying it cannot be reached, in the
    operating system's words."""
    url = f"http://127.0.0.1:{closed_port()}"
    result = run_cli("find", "db", "{}", "--url", url)
    assert_one_error_line(result)
    assert result.stderr.startswith(f"cloudsync find: error: cannot reach {url}: [Errno ")
    assert result.stderr.endswith("Connection refused\n")


def test_a_url_that_is_not_http_is_a_usage_error():
    """A `--url` that is not an http(s) URL: exit 2, one line, the URL without its password."""
    result = run_cli("find", "db", "{}", "--url", f"ftp://u:{WRONG_PASSWORD}@127.0.0.1:1")
    assert_one_error_line(result, status=2)
    assert "http:// or https://" in result.stderr and WRONG_PASSWORD not in result.stderr


def test_wrong_credentials_are_one_line_without_the_password(secured_url):
    """A 401: exit 1, one line pointing at the credential variables, the password not in it."""
    env = cli_env(COUCHDB_URL=secured_url, COUCHDB_USER=ADMIN[0], COUCHDB_PASSWORD=WRONG_PASSWORD)
    result = run_cli("find", "db", "{}", env=env)
    assert_one_error_line(result)
    assert "401" in result.stderr and "COUCHDB_PASSWORD" in result.stderr
    assert WRONG_PASSWORD not in result.stderr + result.stdout


def test_credentials_come_from_couchdb_user_and_password(secured_url):
    """COUCHDB_USER and COUCHDB_PASSWORD log in: `load` writes into a secured server."""
    env = cli_env(COUCHDB_URL=secured_url, COUCHDB_USER=ADMIN[0], COUCHDB_PASSWORD=ADMIN[1])
    result = run_cli("load", "cli-env-auth", "-", "--create", input='{"_id": "a"}\n', env=env)
    assert result.returncode == 0, result.stderr
    assert ADMIN[1] not in result.stderr + result.stdout


def test_credentials_come_from_the_url_in_couchdb_url(secured_url):
    """user:password@ in COUCHDB_URL logs in, and the password is never printed."""
    url = secured_url.replace("://", f"://{ADMIN[0]}:{ADMIN[1]}@")
    result = run_cli("find", "cli-missing-db", "{}", env=cli_env(COUCHDB_URL=url))
    assert_one_error_line(result)  # logged in: the database is missing, not the credentials
    assert "404" in result.stderr
    assert ADMIN[1] not in result.stderr


def test_a_missing_database_is_one_line(embedded_url):
    """A database that does not exist: exit 1, one line with the server's 404."""
    result = run_cli("find", "cli-no-such-db", "{}", "--url", embedded_url)
    assert_one_error_line(result)
    assert "404 not_found" in result.stderr


def test_half_the_credentials_is_a_usage_error(embedded_url):
    """COUCHDB_USER without COUCHDB_PASSWORD: exit 2, one line saying both are needed."""
    result = run_cli("find", "db", "{}", env=cli_env(COUCHDB_URL=embedded_url, COUCHDB_USER="u"))
    assert_one_error_line(result, status=2)
    assert "COUCHDB_PASSWORD" in result.stderr


@pytest.mark.parametrize("command", [["find", "Bad Name", "{}"], ["watch", "Bad Name"], ["load", "Bad Name", "-"],
                                     ["backup", "Bad Name", "-"], ["restore", "-", "Bad Name"],
                                     ["replicate", "Bad Name", "b"]])
def test_an_illegal_database_name_is_a_usage_error(embedded_url, command):
    """A database name the server would refuse: exit 2, one line saying what a name may be."""
    result = run_cli(*command, "--url", embedded_url, input="")
    assert_one_error_line(result, status=2)
    assert "illegal database name 'Bad Name'" in result.stderr
