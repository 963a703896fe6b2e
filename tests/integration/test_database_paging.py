"""`client.databases(limit=, skip=, start_key=, end_key=, descending=)` and
`client.iter_databases()` against both servers (pouchdb-server ignores the parameters:
the client applies them)."""

from __future__ import annotations

import logging
import os

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def names(client):
    """Five databases whose names share a prefix of this process; yields them, sorted."""
    prefix = f"paging-{os.getpid()}-"
    made = [prefix + c for c in "abcde"]
    for name in made:
        client.create_database(name, exist_ok=True)
    yield made
    for name in made:
        client.delete_database(name, missing_ok=True)


def test_start_key_and_end_key_select_a_range(client, names):
    """start_key..end_key (both included) selects those names, sorted."""
    assert client.databases(start_key=names[1], end_key=names[3]) == names[1:4]


def test_skip_and_limit_page_within_the_range(client, names, server_kind, caplog):
    """skip and limit apply after the range; on pouchdb-server the client applies them."""
    caplog.set_level(logging.DEBUG, logger="cloudsync")
    assert client.databases(start_key=names[0], end_key=names[-1], skip=1, limit=2) == names[1:3]
    assert ("applying them here" in caplog.text) == (server_kind == "pouchdb")


def test_descending_starts_at_start_key(client, names):
    """descending walks down from start_key to end_key."""
    assert client.databases(descending=True, start_key=names[3], end_key=names[1]) == names[3:0:-1]


def test_no_arguments_lists_every_database(client, names):
    """Without arguments every name is listed, as before."""
    assert set(names) <= set(client.databases())


def test_iter_databases_pages_through_every_name_once(client, names):
    """iter_databases(page_size=2) yields each name of the range once, in order."""
    assert list(client.iter_databases(page_size=2, start_key=names[0], end_key=names[-1])) == names


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"limit": 0}, ValueError), ({"skip": -1}, ValueError), ({"start_key": 3}, TypeError),
])
def test_bad_arguments_are_refused_before_any_request(client, kwargs, error):
    """A bad limit, skip or key is refused with a clear error."""
    with pytest.raises(error):
        client.databases(**kwargs)
