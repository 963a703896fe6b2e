"""Benchmark 7, bulk memory: peak RSS of a process writing 1,000,000 documents from a
generator through ``db.bulk()``.

Each contender runs in a fresh subprocess against the embedded server (its own new
database) and reports its own peak RSS (``VmHWM``) and rate:

- ``generator → db.bulk()``: the documents are made one at a time and written 500 per
  ``_bulk_docs`` request as the results are read. Target: peak RSS < 50 MB at 1,000,000.
- ``list first → db.bulk()`` (baseline): the same generator materialised into a list
  before the same call, as a caller holding its input does (and as the one-request
  ``bulk()`` before 0.2 did inside itself): memory grows with the input.
- ``floor``: cloudsync imported and a client made, nothing written (the fixed cost).

Run: python -m bench.bulk [--quick] [--docs 1000000]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

from bench import _harness
from bench._harness import Row, arguments, each_server, print_table
from bench.memory import peak_rss_kb

TARGET_MB = 50.0


def documents(count: int) -> Iterator[dict]:
    """``count`` small documents, about 100 bytes each as JSON, made one at a time."""
    for i in range(count):
        yield {"_id": f"doc-{i:09d}", "type": "reading", "n": i, "value": i * 0.5, "tags": ["a", "b"]}


def child(url: str, db: str, mode: str, count: int) -> None:
    """Runs in the subprocess: write ``count`` documents as ``mode`` says; print peak RSS."""
    import cloudsync

    with cloudsync.Client(url, timeout=(10, 300)) as client:
        database = client.create_database(db)
        started = time.perf_counter()
        written = 0
        if mode != "floor":
            docs = documents(count) if mode == "stream" else list(documents(count))
            for result in database.bulk(docs):
                written += result.ok
        seconds = time.perf_counter() - started
    print(json.dumps({"written": written, "peak_kb": peak_rss_kb(), "seconds": seconds}))


CONTENDERS = {"floor": "floor (cloudsync imported, nothing written)",
              "stream": "generator → db.bulk()",
              "list": "list first → db.bulk() (baseline)"}


def measure(server: str, url: str, count: int) -> list[Row]:
    rows: list[Row] = []
    peaks: dict[str, float] = {}
    for n, mode in enumerate(CONTENDERS):
        size = 0 if mode == "floor" else count
        result = _harness.run_child("bench.bulk", url, f"bench-bulk-{n}", mode, str(size), timeout=3600)
        if result["written"] != size:
            raise RuntimeError(f"{mode} wrote {result['written']:,} of {size:,}")
        peaks[mode] = result["peak_kb"] / 1024
        rate = f", {size / result['seconds']:,.0f} docs/s" if size else ""
        print(f"{server} {mode} {size:,}: peak {peaks[mode]:.1f} MB{rate}", flush=True)
    for mode, label in CONTENDERS.items():
        target = mode == "stream"
        rows.append(Row(server, f"peak RSS writing {0 if mode == 'floor' else count:,} docs", label, peaks[mode], "MB",
                        ratio=peaks["list"] / peaks[mode] if target else None,
                        baseline="list first" if target else "",
                        target=f"<{TARGET_MB:g} MB" if target else "",
                        met=peaks[mode] < TARGET_MB if target else None))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--child":
        url, db, mode, count = argv[1:5]
        child(url, db, mode, int(count))
        return []
    parser = arguments(__doc__, "20,000 documents: checks that it runs", servers="embedded")
    parser.add_argument("--docs", type=int, default=None, help="documents written (default 1,000,000)")
    args = parser.parse_args(argv)
    count = args.docs or (20_000 if args.quick else 1_000_000)
    rows: list[Row] = []
    for name, url in each_server(args.servers):
        rows += measure(name, url, count)
    print_table("Peak RSS writing a generator through db.bulk() (fresh process per run)", rows)
    return rows


if __name__ == "__main__":
    main()
