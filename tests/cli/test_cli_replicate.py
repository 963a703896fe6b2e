"""`cloudsync replicate SOURCE TARGET`: one-shot between the servers compared document by
document, database URLs with credentials of their own, filters, resuming from the
checkpoint, and `--continuous` stopped with SIGINT."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

import cloudsync
from tests.conftest import ADMIN
from tests.integration.test_backup import fill, snapshot

from .conftest import RUN_TIMEOUT, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def copy_name(embedded_url: str) -> Iterator[str]:
    """The name of a database on the embedded server to replicate into (not created)."""
    name = f"cli-copy-{uuid.uuid4().hex[:12]}"
    yield name
    with cloudsync.Client(embedded_url) as client:
        client.delete_database(name, missing_ok=True)


def test_a_one_shot_replication_copies_every_revision(server_url, db, embedded_url, copy_name):
    """SOURCE and TARGET as database URLs (any server into the embedded one), `--create-target`:
    the same leaves, deletions, bodies and histories; a summary; exit 0."""
    fill(db, 60)
    result = run_cli("replicate", f"{server_url}/{db.name}", f"{embedded_url}/{copy_name}", "--create-target")
    assert result.returncode == 0, result.stderr
    assert "replication completed: " in result.stderr and " 0 refused by the target" in result.stderr
    with cloudsync.Client(embedded_url) as client:
        assert snapshot(client.database(copy_name)) == snapshot(db)


def test_a_second_run_resumes_from_the_checkpoint(embedded_url, copy_name):
    """Names on `--url`; run again after one more document, only that change is read."""
    with cloudsync.Client(embedded_url) as client:
        source = client.create_database(f"cli-src-{uuid.uuid4().hex[:12]}")
        try:
            fill(source, 30)
            first = run_cli("replicate", source.name, copy_name, "--create-target", "--url", embedded_url)
            assert first.returncode == 0, first.stderr
            source.create({"_id": "late"})
            second = run_cli("replicate", source.name, copy_name, "--url", embedded_url)
            assert second.returncode == 0, second.stderr
            assert "replication completed: 1 changes read" in second.stderr
            assert snapshot(client.database(copy_name)) == snapshot(source)
        finally:
            client.delete_database(source.name)


def test_each_url_carries_its_own_credentials(secured_url, embedded_url, copy_name):
    """A secured source with user:password@ in its URL, an open target without: replicated,
    and the password is in no output."""
    with cloudsync.Client(secured_url, auth=ADMIN) as admin:
        source = admin.create_database(f"cli-secured-{uuid.uuid4().hex[:12]}")
        try:
            assert not source.bulk([{"_id": "a"}, {"_id": "b"}]).run()
            with_password = secured_url.replace("://", f"://{ADMIN[0]}:{ADMIN[1]}@") + "/" + source.name
            result = run_cli("replicate", with_password, f"{embedded_url}/{copy_name}", "--create-target")
            assert result.returncode == 0, result.stderr
            assert ADMIN[1] not in result.stdout + result.stderr
            assert f"{secured_url}/{source.name} -> " in result.stderr
        finally:
            admin.delete_database(source.name)
    with cloudsync.Client(embedded_url) as client:
        assert [row["id"] for row in client.database(copy_name).all_docs()] == ["a", "b"]


def test_doc_ids_replicate_only_those_documents(embedded_url, db, copy_name, server_url):
    """`--doc-ids a,b`: only those documents reach the target."""
    fill(db, 10)
    result = run_cli("replicate", db.name, f"{embedded_url}/{copy_name}", "--create-target",
                     "--doc-ids", "doc-0004,doc-0007", "--url", server_url)
    assert result.returncode == 0, result.stderr
    with cloudsync.Client(embedded_url) as client:
        assert [row["id"] for row in client.database(copy_name).all_docs()] == ["doc-0004", "doc-0007"]


def test_replicate_usage_errors(embedded_url):
    """A selector with doc ids, or a URL naming no database: exit 2, one line."""
    for args in (["a", "b", "--selector", "{}", "--doc-ids", "x"], [embedded_url, "b"]):
        result = run_cli("replicate", *args, "--url", embedded_url)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_missing_target_is_one_error_line(embedded_url, copy_name):
    """A TARGET that does not exist, without `--create-target`: exit 1, one line, the 404."""
    with cloudsync.Client(embedded_url) as client:
        source = client.create_database(f"cli-src-{uuid.uuid4().hex[:12]}")
        try:
            result = run_cli("replicate", source.name, copy_name, "--url", embedded_url)
        finally:
            client.delete_database(source.name)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "404" in result.stderr and copy_name in result.stderr


def test_a_continuous_replication_runs_until_sigint(embedded_url, copy_name, cli_process):
    """`--continuous` copies what is written while it runs; SIGINT stops it: exit 0, a summary
    of what it did, and the command that goes on."""
    with cloudsync.Client(embedded_url) as client:
        source = client.create_database(f"cli-src-{uuid.uuid4().hex[:12]}")
        try:
            rep = cli_process("replicate", source.name, copy_name, "--continuous", "--create-target",
                              "--url", embedded_url)
            rep.wait_for(lambda p: any("continuous; Ctrl-C stops" in line for line in p.stderr))
            source.create({"_id": "live-1", "n": 1})
            target = client.database(copy_name)
            deadline = time.monotonic() + RUN_TIMEOUT
            while not (target.exists() and target.info()["doc_count"] == 1):
                assert time.monotonic() < deadline, "the document was not replicated"
                time.sleep(0.05)  # polling the target, not waiting for a guessed time
            assert rep.interrupt() == 0
        finally:
            client.delete_database(source.name)
    stderr = "".join(rep.stderr)
    assert "replication stopped: 1 changes read, 1 revisions read, 1 written" in stderr
    assert (f"stopped; to go on: cloudsync replicate {source.name} {copy_name} --continuous --create-target "
            f"--url {embedded_url}") in stderr
    assert "Traceback" not in stderr
