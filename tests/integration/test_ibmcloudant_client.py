"""IBM's `ibmcloudant` SDK (a Python client nobody here wrote) against the embedded server:
session login with `CouchDbSessionAuthenticator` and `post_all_docs` with body parameters."""

from __future__ import annotations

import itertools

import pytest
import requests

from tests.conftest import ADMIN

cloudant = pytest.importorskip("ibmcloudant.cloudant_v1")
session_auth = pytest.importorskip("ibmcloudant.couchdb_session_authenticator")

_names = itertools.count()


@pytest.fixture
def service(secured_url: str) -> cloudant.CloudantV1:
    """A CloudantV1 client of the secured embedded server, logged in through `/_session`."""
    client = cloudant.CloudantV1(authenticator=session_auth.CouchDbSessionAuthenticator(*ADMIN))
    client.set_service_url(secured_url)
    return client


@pytest.fixture
def letters(secured_url: str) -> str:
    """A database of documents `a` to `e`, each with its letter's position as `n`."""
    name = f"cloudant-{next(_names)}"
    with requests.Session() as http:
        http.auth = ADMIN
        assert http.put(f"{secured_url}/{name}").status_code == 201
        docs = [{"_id": c, "n": i} for i, c in enumerate("abcde")]
        assert http.post(f"{secured_url}/{name}/_bulk_docs", json={"docs": docs}).status_code == 201
    return name


def test_session_login_authenticates(service):
    """`CouchDbSessionAuthenticator` logs in (it sends `username`) and its cookie is accepted."""
    info = service.get_session_information().get_result()
    assert info["userCtx"]["name"] == ADMIN[0] and info["info"]["authenticated"] == "cookie"


def test_post_all_docs_with_body_parameters(service, letters):
    """`post_all_docs` with `include_docs`, `limit` and `start_key` gets those rows with their documents."""
    result = service.post_all_docs(db=letters, include_docs=True, limit=2, start_key="b").get_result()
    assert [(row["id"], row["doc"]["n"]) for row in result["rows"]] == [("b", 1), ("c", 2)]
