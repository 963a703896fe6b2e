"""Benchmark 7, replication: 100,000 documents (a few conflicts and deletions) copied by
``cloudsync.replicate()`` and by PouchDB's own replicator (Node, ``pouchdb-node``, its
defaults) between the same servers, in the same run. Run: python -m bench.replication [--quick]

Pairs: pouchdb-server → embedded server, and embedded → embedded (another database on the
same server). Each round replicates the whole source into a fresh target database, the
contenders taking turns (in reverse order every other round); the rate is revisions
written per second, start to finish, checkpoints and process start included (Node's start
is about 0.2 s of PouchDB's time: small beside a 100,000-document run). Target: cloudsync
at least 1.5× PouchDB's docs/s (median of the paired per-round ratios).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Callable

from bench._harness import ROOT, Row, arguments, embedded, median, pouchdb, print_table

TARGET = 1.5
SCRIPT = ROOT / "tests" / "node" / "pouchdb_replicate.js"
_names = itertools.count()


def fill(source: object, docs: int) -> int:
    """`docs` small documents in pages of 5,000, one in 100 updated, one in 500 deleted,
    one in 1,000 given a conflict (new_edits=false); returns the revisions to replicate."""
    leaves = 0
    for start in range(0, docs, 5000):
        page = [{"_id": f"doc-{i:07}", "n": i, "kind": "bench", "tags": ["a", "b", i % 13]}
                for i in range(start, min(docs, start + 5000))]
        written = list(source.bulk(page))  # type: ignore[attr-defined]
        edits = [{"_id": r.id, "_rev": r.rev, "_deleted": True} if j % 500 == 0 else
                 {"_id": r.id, "_rev": r.rev, "n": -1, "kind": "edited"}
                 for j, r in enumerate(written) if j % 100 == 0]
        source.bulk(edits).run()  # type: ignore[attr-defined]
        conflicts = [{"_id": r.id, "_rev": "2-" + "c" * 32, "conflict": True,
                      "_revisions": {"start": 2, "ids": ["c" * 32, r.rev.partition("-")[2]]}}
                     for j, r in enumerate(written) if j % 1000 == 100]  # an edited one: a second branch
        source.bulk(conflicts, new_edits=False).run()  # type: ignore[attr-defined]
        leaves += len(page) + len(conflicts)
    return leaves


def measure(pair: str, source_url: str, target_url: str, docs: int, count: int) -> list[Row]:
    import cloudsync

    source_client, target_client = cloudsync.Client(source_url), cloudsync.Client(target_url)
    source = source_client.create_database(f"bench-rep-source-{next(_names)}")
    started = time.perf_counter()
    leaves = fill(source, docs)
    print(f"{pair}: {leaves:,} revisions loaded in {time.perf_counter() - started:.0f} s", flush=True)

    def fresh() -> object:
        return target_client.create_database(f"bench-rep-target-{next(_names)}")

    def ours() -> int:
        target = fresh()
        try:
            return cloudsync.replicate(source, target).progress.docs_written
        finally:
            target_client.delete_database(target.name)  # type: ignore[attr-defined]

    def theirs() -> int:
        target = fresh()
        try:
            run = subprocess.run(["node", str(SCRIPT), source.url, target.url],  # type: ignore[attr-defined]
                                 capture_output=True, text=True, timeout=3600)
            if run.returncode != 0:
                raise RuntimeError(f"PouchDB's replicator failed: {run.stderr[-2000:]}")
            return int(json.loads(run.stdout)["docs_written"])
        finally:
            target_client.delete_database(target.name)  # type: ignore[attr-defined]

    runs: dict[str, Callable[[], int]] = {"cloudsync": ours, "pouchdb-node": theirs}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for _ in range(count):
        for name in order:
            begun = time.perf_counter()
            written = runs[name]()
            seconds = time.perf_counter() - begun
            if written != leaves:
                raise RuntimeError(f"{name} wrote {written} revisions of {leaves}")
            rates[name].append(written / seconds)
            print(f"  {pair} {name}: {written:,} revisions in {seconds:.1f} s ({written / seconds:,.0f}/s)", flush=True)
        order.reverse()
    source_client.delete_database(source.name)
    ratio = median([ours_rate / theirs_rate for ours_rate, theirs_rate in zip(rates["cloudsync"], rates["pouchdb-node"], strict=True)])
    return [
        Row(pair, "replication docs/s", "pouchdb-node", median(rates["pouchdb-node"]), "docs/s"),
        Row(pair, "replication docs/s", "cloudsync", median(rates["cloudsync"]), "docs/s", ratio=ratio,
            baseline="pouchdb-node", target=f">= {TARGET}x", met=ratio >= TARGET),
    ]


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arguments(__doc__, "1,000 documents, one round: checks that it runs", servers="pouchdb,embedded")
    args = parser.parse_args(argv)
    docs, count = (1000, 1) if args.quick else (100_000, 1)
    rows: list[Row] = []
    with embedded() as target_url:
        if "pouchdb" in args.servers.split(","):
            with pouchdb() as source_url:
                rows += measure("pouchdb → embedded", source_url, target_url, docs, count)
        rows += measure("embedded → embedded", target_url, target_url, docs, count)
    print_table("Replication", rows)
    return rows


if __name__ == "__main__":
    main()
