"""Benchmark 4, recovery: time from a server restart to the first change delivered after it.

A subscription (default settings, default ``ReconnectPolicy``) follows a database on the
embedded server; the server is stopped (SIGTERM, or ``kill -9``) and started again on the
same port and data directory; the moment ``start()`` returns (the server listens again)
a document is written, and the time until the subscriber's loop sees it is recorded.
The outage itself (about a second: a Python process starting) makes the backoff grow
through several failed attempts first, which is the point of the measurement.

Only the embedded server: pouchdb-server runs in memory here, and a restarted one has
lost the database (a subscription gets a terminal 404, correctly).

The table reports the median and the worst of ``--rounds`` restarts per transport and
mode (transports take turns in every round); the target is the worst case <= 1 s.

Run: python -m bench.recovery [--quick] [--servers embedded] [--rounds N]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

from bench import _feeds
from bench._harness import Row, median, print_table

TARGET = 1.0


def one_restart(server, url: str, db: str, transport: str, kill: bool, tag: str) -> float:
    """Seconds from the server listening again to the subscriber seeing the next write."""
    import cloudsync

    client = cloudsync.Client(url)
    sub = client.database(db).subscribe(transport, since="now", **_feeds.cloudsync_options(transport))
    arrived: dict[str, float] = {}
    events = {name: threading.Event() for name in ("before", "after")}

    def listen() -> None:
        for change in sub:
            arrived[change.id] = time.perf_counter()
            for name, event in events.items():
                if change.id == f"{tag}-{name}":
                    event.set()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    writer = _feeds.session()
    try:
        # Connected: a write reaches the subscriber.
        writer.put(f"{url}/{db}/{tag}-before", data=b"{}", headers=_feeds.JSON_HEADERS).raise_for_status()
        if not events["before"].wait(10):
            raise RuntimeError(f"{transport}: the subscription never connected")
        server.kill() if kill else server.stop()
        server.start()
        up = time.perf_counter()
        writer.close()
        writer = _feeds.session()
        writer.put(f"{url}/{db}/{tag}-after", data=b"{}", headers=_feeds.JSON_HEADERS).raise_for_status()
        if not events["after"].wait(60):
            return float("inf")
        return arrived[f"{tag}-after"] - up
    finally:
        sub.close()
        thread.join(2)
        writer.close()
        client.close()


def measure(rounds: int) -> list[Row]:
    from cloudsync.server.testing import serve

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="cloudsync-bench-") as data, serve(data_dir=data) as server:
        url = server.url
        db = "bench-recovery"
        _feeds.session().put(f"{url}/{db}").raise_for_status()
        times: dict[tuple[str, str], list[float]] = {}
        for round_no in range(rounds):
            for kill in (False, True):
                mode = "kill -9" if kill else "SIGTERM"
                for transport in _feeds.ALL_TRANSPORTS:
                    tag = f"r{round_no}-{transport}-{'kill' if kill else 'term'}-{time.monotonic_ns()}"
                    seconds = one_restart(server, url, db, transport, kill, tag)
                    times.setdefault((mode, transport), []).append(seconds)
        for (mode, transport), values in times.items():
            worst = max(values)
            rows.append(Row("embedded", f"recovery after {mode} restart, median", f"cloudsync {transport}",
                            median(values) * 1e3, "ms"))
            rows.append(Row("embedded", f"recovery after {mode} restart, worst of {len(values)}",
                            f"cloudsync {transport}", worst * 1e3, "ms", target=f"<={TARGET * 1e3:.0f} ms",
                            met=worst <= TARGET))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one restart per transport and mode")
    parser.add_argument("--servers", default="embedded", help="embedded only (pouchdb-server is skipped: in memory)")
    parser.add_argument("--rounds", type=int, default=None, help="restarts per transport and mode (default 5)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    rows: list[Row] = []
    for name in args.servers.split(","):
        if name == "embedded":
            rows += measure(rounds)
        else:
            print(f"recovery: skipping {name} (an in-memory server loses its databases on restart)")
    print_table("Recovery after a server restart (ms from listening again to the next change delivered)", rows)
    return rows


if __name__ == "__main__":
    main()
