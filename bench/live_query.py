"""Benchmark: live queries on the embedded server.

One database of 100,000 documents, 10,000 of them orders (the rest other types). Three
measures, each against its baseline in the same run:

- write -> event latency: a live query over the orders (no limit), one order written at
  a time, the time from the write's answer to its `added` event; p50 and p99 per
  transport. Target on the push transports: p50 <= 5 ms, p99 <= 15 ms.
- memory: peak RSS of a process with a `limit=20` window sorted by total over the
  100,000 documents while 500 orders move through it, minus that of a process with an
  idle subscription seeing the same writes. Target: <= 5 MB.
- snapshot: `db.live_query(...)` (snapshot read, feed opened) against
  `list(db.query(...))` of the same selector, 10,000 matches, interleaved rounds.
  Target: ratio <= 1.1.

Run: python -m bench.live_query [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from bench._harness import ROOT, Row, arguments, each_server, median, percentile, print_table, rounds
from bench.memory import peak_rss_kb

ORDERS = {"type": "order"}
WINDOW = {"type": "order", "total": {"$gte": 0}}
PUSH = ("sse", "websocket")
TRANSPORTS = ("longpoll", "continuous", "sse", "websocket")


def options(transport: str) -> dict:
    return {"transport_options": {"min_heartbeat": 0}} if transport == "websocket" else {}


def seed(db, total: int) -> None:
    """`total` documents, every tenth an order."""
    db.create_index(["total"])
    batch = []
    for i in range(total):
        batch.append({"_id": f"d{i:07d}", "type": "order" if i % 10 == 0 else "other", "total": i % 1000})
        if len(batch) == 5000:
            db.bulk(batch).run()
            batch = []
    if batch:
        db.bulk(batch).run()


def latency(db, transport: str, writes: int) -> list[float]:
    """Milliseconds from each write's answer to its event."""
    arrived: dict[str, float] = {}
    seen = threading.Condition()

    def on_change(events) -> None:
        now = time.perf_counter()
        with seen:
            for event in events:
                arrived.setdefault(event.id, now)
            seen.notify_all()

    samples = []
    with db.live_query(ORDERS, transport=transport, **options(transport)) as lq:
        lq.start(on_change)
        for i in range(writes + 5):
            doc_id = f"lat-{transport}-{i:05d}"
            db.create({"_id": doc_id, "type": "order", "total": 5})
            written = time.perf_counter()
            with seen:
                if not seen.wait_for(lambda doc_id=doc_id: doc_id in arrived, 10):
                    raise RuntimeError(f"{transport}: no event for {doc_id}")
            if i >= 5:  # the first few warm the connection up
                samples.append((arrived[doc_id] - written) * 1000)
    return samples


def child(url: str, db_name: str, kind: str, moves: int) -> None:
    """Runs in a subprocess: an idle subscription or a limit=20 window sees `moves`
    writes; prints the peak RSS."""
    import cloudsync

    db = cloudsync.Client(url).database(db_name)
    done = threading.Event()
    last = f"mem-{kind}-{moves - 1:05d}"
    if kind == "window":
        lq = db.live_query(WINDOW, sort=[{"total": "desc"}], limit=20, transport="sse")
        lq.start(lambda events: done.set() if any(e.id == last for e in events) else None)
        closer = lq
    else:
        sub = db.subscribe("sse")
        sub.start(lambda change: done.set() if change.id == last else None)
        closer = sub
    writer = cloudsync.Client(url).database(db_name)
    for i in range(moves):  # each enters the window at the top, pushing the last one out
        writer.create({"_id": f"mem-{kind}-{i:05d}", "type": "order", "total": 1000 + i})
    if not done.wait(60):
        raise SystemExit(f"{kind}: the last write was not seen")
    closer.close()
    print(json.dumps({"peak_kb": peak_rss_kb()}))


def run_child(url: str, db_name: str, kind: str, moves: int) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, "-m", "bench.live_query", "--child", url, db_name, kind, str(moves)],
                         capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT))
    if out.returncode != 0:
        raise RuntimeError(f"live query memory child failed ({kind}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_kb"] / 1024


def measure(server: str, url: str, total: int, writes: int, snapshot_rounds: int) -> list[Row]:
    import cloudsync

    client = cloudsync.Client(url, timeout=(5, 120))
    name = "bench-live-query"
    client.delete_database(name, missing_ok=True)
    db = client.create_database(name)
    started = time.perf_counter()
    seed(db, total)
    print(f"{server}: seeded {total:,} docs in {time.perf_counter() - started:.1f}s", flush=True)
    rows: list[Row] = []

    def snapshot() -> int:
        with db.live_query(ORDERS) as lq:
            return len(lq.results)

    def query() -> int:
        return len(list(db.query(ORDERS)))

    rates = rounds({"live_query": snapshot, "query": query}, snapshot_rounds, warmup=1)
    seconds = {k: 1 / max(v) for k, v in rates.items()}  # per item, best round
    ratio = median([q / lq for lq, q in zip(rates["live_query"], rates["query"], strict=True)])
    rows.append(Row(server, f"snapshot of {total // 10:,} matches", "live_query()", seconds["live_query"] * total / 10,
                    "s", ratio=ratio, baseline="list(db.query())", target="<=1.1x", met=ratio <= 1.1))

    for transport in TRANSPORTS:
        samples = latency(db, transport, writes)
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        push = transport in PUSH
        print(f"{server} {transport}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
        rows.append(Row(server, "write -> event p50", f"live query {transport}", p50, "ms",
                        target="<=5 ms" if push else "", met=p50 <= 5 if push else None))
        rows.append(Row(server, "write -> event p99", f"live query {transport}", p99, "ms",
                        target="<=15 ms" if push else "", met=p99 <= 15 if push else None))

    moves = max(50, writes * 2)
    idle = run_child(url, name, "idle", moves)
    window = run_child(url, name, "window", moves)
    rows.append(Row(server, "peak RSS", "idle subscription", idle, "MB"))
    rows.append(Row(server, f"peak RSS, limit=20 window over {total:,}", "live query", window, "MB",
                    baseline="idle subscription", target="<=+5 MB", met=window - idle <= 5))
    client.delete_database(name, missing_ok=True)
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--child":
        url, db_name, kind, moves = argv[1:5]
        child(url, db_name, kind, int(moves))
        return []
    parser = arguments(__doc__, "2,000 documents, 20 writes: checks that it runs", servers="embedded")
    args = parser.parse_args(argv)
    total, writes, snapshot_rounds = (2_000, 20, 2) if args.quick else (100_000, 200, 5)
    rows: list[Row] = []
    for name, url in each_server(args.servers):
        rows += measure(name, url, total, writes, snapshot_rounds)
    print_table("Live queries", rows)
    return rows


if __name__ == "__main__":
    main()
