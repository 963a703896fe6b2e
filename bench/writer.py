"""Benchmark: db.writer() against hand-batched ``_bulk_docs``, same documents, same server.

- ``hand-batched <n>``: a ``requests.Session`` posting ``_bulk_docs`` of ``n`` documents
  in a loop (what an ingest script does by hand), for several ``n``; the best is the baseline.
- ``cloudsync writer``: ``db.writer(batch_size=<best n>)``, ``put()`` per document, then
  ``close()`` (everything acknowledged). Target: >= 0.90x the best hand-batched rate.
- ``put() p99``: the producer-side latency of ``put()`` while the queue is not full.
  Target: < 1 ms.

Run: python -m bench.writer [--quick] [--servers embedded,pouchdb]
"""

from __future__ import annotations

import itertools
import json
import time

import requests

from bench._harness import Row, arguments, each_server, paired_ratio, percentile, print_table, rounds

BATCH_SIZES = (100, 500, 1000, 2000)
_names = itertools.count()


def documents(count: int) -> list[dict]:
    return [{"type": "reading", "sensor": f"s{i % 16}", "seq": i, "payload": "x" * 100} for i in range(count)]


def measure(server: str, url: str, count: int, round_count: int) -> list[Row]:
    import cloudsync

    client = cloudsync.Client(url)
    session = requests.Session()
    docs = documents(count)
    made: list[str] = []
    latencies: list[float] = []

    def fresh() -> str:
        name = f"bench-writer-{next(_names)}"
        client.create_database(name)
        made.append(name)
        return name

    def hand(size: int):
        def run() -> int:
            path = f"{url}/{fresh()}/_bulk_docs"
            for start in range(0, count, size):
                body = json.dumps({"docs": docs[start : start + size]})
                r = session.post(path, data=body, headers={"Content-Type": "application/json"})
                r.raise_for_status()
            return count

        return run

    def writer(size: int):
        def run() -> int:
            db = client.database(fresh())
            with db.writer(batch_size=size, max_pending=count + size, flush_interval=0.05, close_timeout=900) as w:
                for doc in docs:
                    started = time.perf_counter()
                    w.put(doc)
                    latencies.append(time.perf_counter() - started)
            if w.written != count:
                raise RuntimeError(f"writer wrote {w.written:,} of {count:,}")
            return count

        return run

    # Which batch size suits this server best, by hand; then the writer at that size.
    sizes = [s for s in BATCH_SIZES if s <= count] or [count]
    probe = rounds({f"hand-batched {s}": hand(s) for s in sizes}, 1)
    best = max(sizes, key=lambda s: probe[f"hand-batched {s}"][0])
    runs = {f"hand-batched {best}": hand(best), "cloudsync writer": writer(best)}
    rates = rounds(runs, round_count)
    base = f"hand-batched {best}"
    ratio = paired_ratio(rates, "cloudsync writer", (base,))
    p99 = percentile(latencies, 99) * 1e6
    rows = [
        Row(server, f"docs/s ({count:,} docs)", base, max(rates[base]), "docs/s"),
        Row(server, f"docs/s ({count:,} docs)", "cloudsync writer", max(rates["cloudsync writer"]), "docs/s",
            ratio, base, ">=0.90x", ratio >= 0.90),
        Row(server, "put() latency p99", "cloudsync writer", p99, "µs", target="<1000 µs", met=p99 < 1000),
    ]
    for name in made:
        client.delete_database(name)
    client.close()
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arguments(__doc__, "200 documents, one round: checks that it runs")
    args = parser.parse_args(argv)
    count, round_count = (200, 1) if args.quick else (20_000, 5)
    rows: list[Row] = []
    for name, url in each_server(args.servers):
        rows += measure(name, url, count, round_count)
    print_table("Writer", rows)
    return rows


if __name__ == "__main__":
    main()
