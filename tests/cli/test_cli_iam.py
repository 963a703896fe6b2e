"""IBM Cloud IAM from the command line: an API key in CLOUDANT_APIKEY (or IAM_API_KEY) is
exchanged at IAM_TOKEN_URL (here the suite's local token endpoint) for a token the
JWT-enabled embedded server accepts; the key never appears in the output."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import cloudsync
from tests._servers.iam import IAMEndpoint
from tests.conftest import ADMIN, JWT_SECRET

from .conftest import cli_env, run_cli

pytestmark = pytest.mark.integration

KEY = "cli-iam-key-5e1d7b20"
USERS = {KEY: ("svc", ["_admin"])}


@pytest.fixture
def iam() -> Iterator[IAMEndpoint]:
    with IAMEndpoint(JWT_SECRET, USERS) as endpoint:
        yield endpoint


@pytest.fixture
def iam_db(jwt_server) -> Iterator[str]:
    """A database on the JWT-enabled server holding one document."""
    with cloudsync.Client(jwt_server.url, auth=ADMIN) as admin:
        db = admin.create_database("cli-iam", exist_ok=True)
        db.bulk([{"_id": "only", "n": 1}]).run()
        yield db.name
        admin.delete_database(db.name, missing_ok=True)


@pytest.mark.parametrize("variable", ["CLOUDANT_APIKEY", "IAM_API_KEY"])
def test_an_iam_key_in_the_environment_authenticates(jwt_server, iam, iam_db, variable):
    """With the key in the environment and no user or password, `find` exchanges it at the
    token endpoint and reads as the token's user; the key is in no output."""
    env = cli_env(COUCHDB_URL=jwt_server.url, IAM_TOKEN_URL=iam.url, **{variable: KEY})
    result = run_cli("find", iam_db, "{}", "--fields", "_id,n", env=env)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [{"_id": "only", "n": 1}]
    assert iam.exchanges == 1
    assert KEY not in result.stdout + result.stderr


def test_a_refused_iam_key_is_one_line_without_the_key(jwt_server, iam):
    """A token endpoint refusing the key (and echoing it in its error body): exit 1, one line
    pointing at the IAM variables, the key not in it."""
    iam.mode = "echo-key"
    env = cli_env(COUCHDB_URL=jwt_server.url, IAM_TOKEN_URL=iam.url, CLOUDANT_APIKEY=KEY)
    result = run_cli("find", "cli-iam", "{}", env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "IAM" in result.stderr and "CLOUDANT_APIKEY" in result.stderr
    assert KEY not in result.stdout + result.stderr


def test_a_user_and_password_win_over_an_iam_key(jwt_server, iam, iam_db):
    """COUCHDB_USER and COUCHDB_PASSWORD are used when set, the IAM key then left alone."""
    env = cli_env(COUCHDB_URL=jwt_server.url, IAM_TOKEN_URL=iam.url, CLOUDANT_APIKEY=KEY,
                  COUCHDB_USER=ADMIN[0], COUCHDB_PASSWORD=ADMIN[1])
    result = run_cli("find", iam_db, "{}", env=env)
    assert result.returncode == 0, result.stderr
    assert iam.requests == 0
