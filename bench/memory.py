"""Benchmark 5, memory: peak RSS of a process draining 100,000 and 1,000,000 small changes.

One database of 1,000,000 small documents on the embedded server; for each transport and
size a fresh subprocess subscribes from seq 0, iterates until it has that many changes
and reports its own peak RSS (``VmHWM`` from /proc/self/status; ``ru_maxrss`` elsewhere),
so every peak belongs to one run. A third size, 0, is the process with cloudsync imported and a
subscription opened (the fixed cost). Target: the peak grows by < 10 MB from 100k to 1M
(flat, not proportional to the backlog).

pouchdb-server is not in the default run: seeding a million documents into it takes
minutes (``--servers pouchdb`` runs it anyway, longpoll and continuous only).

Run: python -m bench.memory [--quick] [--servers embedded] [--changes 1000000]
"""

from __future__ import annotations

import json
import sys
import time

from bench import _feeds, _harness
from bench._harness import Row, arguments, each_server, print_table

TARGET_MB = 10.0


def peak_rss_kb() -> int:
    """This process's peak RSS: VmHWM, which starts afresh at exec. (ru_maxrss is kept
    across execve on Linux, so a child spawned by a bigger parent reports the parent's.)"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(url: str, db: str, transport: str, count: int) -> None:
    """Runs in the subprocess: drain ``count`` changes, print peak RSS and the time taken."""
    import cloudsync

    database = cloudsync.Client(url).database(db)
    started = time.perf_counter()
    n = 0
    with database.subscribe(transport, since=0, **_feeds.cloudsync_options(transport)) as sub:
        if count:
            for _ in sub:
                n += 1
                if n == count:
                    break
    seconds = time.perf_counter() - started
    peak_kb = peak_rss_kb()
    print(json.dumps({"count": n, "peak_kb": peak_kb, "seconds": seconds}))


def run_child(url: str, db: str, transport: str, count: int) -> dict:
    result = _harness.run_child("bench.memory", url, db, transport, str(count))
    if result["count"] != count:
        raise RuntimeError(f"{transport} drained {result['count']:,} of {count:,}")
    return result


def measure(server: str, url: str, large: int) -> list[Row]:
    small = large // 10
    db = "bench-memory"
    seconds = _feeds.seed(url, db, large, 0, batch=5_000)
    print(f"{server}: seeded {db} with {large:,} docs in {seconds:.1f}s", flush=True)
    rows: list[Row] = []
    for transport in _feeds.transports_for(server):
        peaks = {}
        for count in (0, small, large):
            result = run_child(url, db, transport, count)
            peaks[count] = result["peak_kb"] / 1024
            rate = f", {count / result['seconds']:,.0f} changes/s" if count else ""
            print(f"{server} {transport} {count:,}: peak {peaks[count]:.1f} MB{rate}", flush=True)
            rows.append(Row(server, f"peak RSS draining {count:,}", f"cloudsync {transport}", peaks[count], "MB"))
        growth = peaks[large] - peaks[small]
        rows.append(Row(server, f"peak RSS growth {small:,} -> {large:,}", f"cloudsync {transport}", growth, "MB",
                        target=f"<{TARGET_MB:g} MB", met=growth < TARGET_MB))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--child":
        url, db, transport, count = argv[1:5]
        child(url, db, transport, int(count))
        return []
    parser = arguments(__doc__, "2,000 and 20,000 changes: checks that it runs", servers="embedded")
    parser.add_argument("--changes", type=int, default=None, help="the large size (default 1,000,000)")
    args = parser.parse_args(argv)
    large = args.changes or (20_000 if args.quick else 1_000_000)
    rows: list[Row] = []
    for name, url in each_server(args.servers):
        rows += measure(name, url, large)
    print_table("Peak RSS while draining (fresh process per run)", rows)
    return rows


if __name__ == "__main__":
    main()
