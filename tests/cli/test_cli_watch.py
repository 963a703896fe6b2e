"""`cloudsync watch DB`: changes as JSON lines, live, over each transport; SIGINT stops it
cleanly with the seq to resume from, and resuming from it repeats nothing."""

from __future__ import annotations

import json
import shlex

import pytest

import cloudsync

from .conftest import run_cli

pytestmark = pytest.mark.integration


def printed(process):
    return [json.loads(line) for line in process.stdout]


def has_revs(*revs):
    """Condition: every one of `revs` (`(id, rev)`) has been printed."""
    return lambda p: set(revs) <= {(c["id"], c["rev"]) for c in printed(p)}


def resume_seq(process):
    """The seq of the resume hint, the last line on stderr, as the shell would pass it."""
    hint = process.stderr[-1]
    assert hint.startswith("stopped after seq "), process.stderr
    words = shlex.split(hint.partition("to resume: ")[2])
    return words[words.index("--since") + 1]


def watch_and_stop(cli_process, server_url, db, transport):
    """Watch from 0 while documents are written before and during; stop with SIGINT."""
    before = list(db.bulk([{"_id": "a"}, {"_id": "b"}]))
    watch = cli_process("watch", db.name, "--since", "0", "--transport", transport, "--url", server_url)
    watch.wait_for(has_revs(*((r.id, r.rev) for r in before)))
    during = list(db.bulk([{"_id": "c"}, {"_id": "a", "_rev": before[0].rev}]))
    watch.wait_for(has_revs(*((r.id, r.rev) for r in during)))
    assert watch.interrupt() == 0
    return watch


def test_watch_prints_every_change_once_and_how_to_resume(cli_process, server_url, db):
    """Each change is one JSON line, printed once; after SIGINT stderr names the seq of the
    last line printed and the command that resumes from it."""
    watch = watch_and_stop(cli_process, server_url, db, "longpoll")
    changes = printed(watch)
    revs = [(c["id"], c["rev"]) for c in changes]
    assert len(revs) == len(set(revs)) == 4
    assert str(changes[-1]["seq"]) == resume_seq(watch)
    assert f"cloudsync watch {db.name} --since " in watch.stderr[-1]


@pytest.mark.parametrize("transport", ["continuous", "sse", "websocket"])
def test_watch_over_each_transport(cli_process, embedded_url, transport):
    """The same over the embedded server's other feeds: every change once, the resume hint."""
    with cloudsync.Client(embedded_url) as client:
        db = client.create_database(f"cli-watch-{transport}")
        watch = watch_and_stop(cli_process, embedded_url, db, transport)
    revs = [(c["id"], c["rev"]) for c in printed(watch)]
    assert len(revs) == len(set(revs)) == 4
    assert str(printed(watch)[-1]["seq"]) == resume_seq(watch)


def test_watch_resumes_from_the_seq_it_printed(cli_process, server_url, db):
    """A second watch `--since` the first one's seq prints only what came after."""
    first = watch_and_stop(cli_process, server_url, db, "longpoll")
    later = db.create({"_id": "later"})
    second = cli_process("watch", db.name, "--since", resume_seq(first), "--url", server_url)
    second.wait_for(has_revs(("later", later["_rev"])))
    assert second.interrupt() == 0
    assert [c["id"] for c in printed(second)] == ["later"]


def test_watch_selector_and_include_docs(cli_process, server_url, db):
    """`--selector` prints only matching documents' changes; `--include-docs` adds each document."""
    watch = cli_process("watch", db.name, "--selector", '{"type": "order"}', "--include-docs",
                        "--url", server_url)
    watch.wait_for(lambda p: any(line.startswith("watching ") for line in p.stderr))
    db.bulk([{"_id": "n", "type": "note"}, {"_id": "o1", "type": "order"}]).run()
    last = db.create({"_id": "o2", "type": "order", "total": 2})
    watch.wait_for(has_revs(("o2", last["_rev"])))
    assert watch.interrupt() == 0
    changes = printed(watch)
    assert [c["id"] for c in changes] == ["o1", "o2"]
    assert changes[-1]["doc"] == {"_id": "o2", "_rev": last["_rev"], "type": "order", "total": 2}


def test_watch_of_a_missing_database_is_one_line(embedded_url):
    """A database that does not exist: exit 1 at once, one line with the 404."""
    result = run_cli("watch", "cli-watch-missing", "--url", embedded_url)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "404" in result.stderr
