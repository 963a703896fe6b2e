"""`cloudsync find DB SELECTOR`: matching documents as JSON lines, with `--fields`, `--sort`
and `--limit`, on both servers."""

from __future__ import annotations

import json

import pytest

import cloudsync

from .conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def orders(db):
    db.bulk([{"_id": f"o{i}", "type": "order", "total": i} for i in range(5)]
            + [{"_id": "n1", "type": "note"}]).run()
    return db


def find(server_url, db, *args):
    result = run_cli("find", db.name, *args, "--url", server_url)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_find_prints_each_matching_document_once(server_url, orders):
    """Every matching document is one JSON line; others are not printed."""
    docs = find(server_url, orders, '{"type": "order"}')
    assert sorted(d["_id"] for d in docs) == [f"o{i}" for i in range(5)]
    assert all(d["type"] == "order" and d["_rev"] for d in docs)


def test_find_fields_and_limit(server_url, orders):
    """`--fields` keeps only those fields; `--limit` caps the number of documents."""
    docs = find(server_url, orders, '{"type": "order"}', "--fields", "_id,total", "--limit", "2")
    assert len(docs) == 2
    assert all(set(d) == {"_id", "total"} for d in docs)


def test_find_sort_descending(server_url, orders):
    """`--sort total:desc` orders the documents by that field, highest first."""
    orders.create_index(["total"])
    docs = find(server_url, orders, '{"total": {"$gte": 0}}', "--sort", "total:desc")
    assert [d["total"] for d in docs] == [4, 3, 2, 1, 0]


def test_find_with_a_selector_that_is_not_json_is_a_usage_error(embedded_url):
    """SELECTOR that is not JSON: exit 2, one line saying so, before connecting."""
    result = run_cli("find", "db", "{type: order}", "--url", embedded_url)
    assert result.returncode == 2
    assert result.stderr.startswith("cloudsync find: error: SELECTOR is not valid JSON")


def test_find_with_an_invalid_selector_is_the_servers_error_on_one_line(embedded_url):
    """A selector the server rejects (an unknown operator; pouchdb-server ignores it): exit 1,
    the 400 on one line."""
    with cloudsync.Client(embedded_url) as client:
        client.create_database("cli-find-invalid", exist_ok=True)
    result = run_cli("find", "cli-find-invalid", '{"total": {"$frob": 1}}', "--url", embedded_url)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "400" in result.stderr
