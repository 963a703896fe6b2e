"""Benchmark 3, write -> notify latency: one writer, one subscriber, per transport.

The writer PUTs one small document at a time (a raw ``requests`` session, pre-encoded
body, the same for every contender) and waits until the subscriber has it before the
next write; latency is from just before the PUT to the moment the subscriber's code
sees the change (same process, ``perf_counter``). It therefore includes the server's
commit: the harness's embedded server is durable (one fsync per commit batch), so the
PUT round trip alone is reported too (``write ack``), as the floor.

Contenders: ``requests continuous`` (a raw streamed feed, ``json.loads`` per line: the
baseline of the ratios, lower is better), python-cloudant's ``Feed`` (continuous), and
cloudsync over each transport the server has. Contenders take turns in every round and
all samples of a contender are pooled: p50 and p99 over ``--writes`` writes each.

Run: python -m bench.latency [--quick] [--servers embedded,pouchdb] [--writes N]
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from bench import _feeds
from bench._harness import Row, arguments, each_server, percentile, print_table

STOP = "zz-stop-"  # a document id starting with this tells a raw listener to end


class Listener:
    """Calls ``on_id(doc_id)`` for every change, on its own thread, until closed."""

    def __init__(self, on_id: Callable[[str], None]) -> None:
        self.on_id = on_id
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self.listen()
        except BaseException as exc:  # reported by the benchmark, never swallowed silently
            self.error = exc

    def listen(self) -> None:
        raise NotImplementedError

    def close(self, writer: Any) -> None:
        raise NotImplementedError


class RawContinuous(Listener):
    def __init__(self, url: str, db: str, on_id: Callable[[str], None]) -> None:
        super().__init__(on_id)
        self.url, self.db = url, db

    def listen(self) -> None:
        s = _feeds.session()
        since = s.get(f"{self.url}/{self.db}").json()["update_seq"]
        params = {"feed": "continuous", "heartbeat": "5000", "since": str(since)}
        with s.get(f"{self.url}/{self.db}/_changes", params=params, stream=True) as r:
            for line in r.iter_lines(chunk_size=65536):
                if line:
                    doc_id = json.loads(line).get("id")
                    if doc_id is not None and doc_id.startswith(STOP):
                        return
                    if doc_id is not None:
                        self.on_id(doc_id)

    def close(self, writer: Any) -> None:
        writer.put(f"{STOP}{time.monotonic_ns()}", stop=True)
        self.thread.join(5)
        if self.thread.is_alive():
            raise RuntimeError(f"{type(self).__name__} did not stop within 5 s of its stop document")


class CloudantFeed(RawContinuous):
    def listen(self) -> None:
        from cloudant.feed import Feed

        database = _feeds.cloudant_db(self.url, self.db)
        since = database.r_session.get(database.database_url).json()["update_seq"]
        feed = Feed(database, feed="continuous", since=since, heartbeat=5000)
        try:
            for row in feed:
                doc_id = row.get("id") if row else None
                if doc_id is not None and doc_id.startswith(STOP):
                    return
                if doc_id is not None:
                    self.on_id(doc_id)
        finally:
            feed.stop()
            if feed._resp is not None:
                feed._resp.close()


class CloudSync(Listener):
    def __init__(self, url: str, db: str, on_id: Callable[[str], None], transport: str) -> None:
        super().__init__(on_id)
        import cloudsync

        self.client = cloudsync.Client(url)
        self.sub = self.client.database(db).subscribe(transport, since="now", **_feeds.cloudsync_options(transport))

    def listen(self) -> None:
        for change in self.sub:
            self.on_id(change.id)

    def close(self, writer: Any) -> None:
        self.sub.close()
        self.thread.join(5)
        self.client.close()


class Writer:
    """PUTs documents one at a time and waits for each to reach the listener."""

    def __init__(self, url: str, db: str) -> None:
        self.url, self.db = url, db
        self.s = _feeds.session()
        self.arrived: dict[str, float] = {}
        self.wanted: str | None = None
        self.event = threading.Event()
        self.acks: list[float] = []

    def on_id(self, doc_id: str) -> None:
        now = time.perf_counter()
        self.arrived[doc_id] = now
        if doc_id == self.wanted:
            self.event.set()

    def put(self, doc_id: str, stop: bool = False, wait: float = 5.0, record: bool = True) -> float:
        """Write ``doc_id``; return the seconds until the listener saw it (NaN after ``wait``)."""
        self.wanted = doc_id
        self.event.clear()
        started = time.perf_counter()
        r = self.s.put(f"{self.url}/{self.db}/{doc_id}", data=b'{"kind":"latency"}', headers=_feeds.JSON_HEADERS)
        acked = time.perf_counter()
        r.raise_for_status()
        if stop:
            return 0.0
        if record:
            self.acks.append(acked - started)
        if not self.event.wait(wait):
            return float("nan")
        return self.arrived[doc_id] - started


def contenders(server: str, url: str, db: str) -> dict[str, Callable[[Callable[[str], None]], Listener]]:
    runs: dict[str, Callable[[Callable[[str], None]], Listener]] = {
        "requests continuous": lambda on_id: RawContinuous(url, db, on_id),
        "python-cloudant": lambda on_id: CloudantFeed(url, db, on_id),
    }
    for transport in _feeds.transports_for(server):
        runs[f"cloudsync {transport}"] = lambda on_id, t=transport: CloudSync(url, db, on_id, t)
    return runs


def measure(server: str, url: str, writes: int, rounds: int) -> list[Row]:
    db = "bench-latency"
    writer = Writer(url, db)
    writer.s.put(f"{url}/{db}")
    runs = contenders(server, url, db)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    per_round = max(1, writes // rounds)
    for round_no in range(rounds):
        for name, make in runs.items():
            listener = make(writer.on_id)
            listener.start()
            # Warm up: the first write reaching the listener proves it is connected.
            for attempt in range(40):
                writer.put(f"warm-{round_no}-{attempt}-{time.monotonic_ns()}", wait=0.25, record=False)
                if writer.event.is_set() or listener.error is not None:
                    break
            if listener.error is not None:
                raise RuntimeError(f"{name} failed on {server}") from listener.error
            prefix = name.replace(" ", "-")
            for i in range(per_round):
                samples[name].append(writer.put(f"{prefix}-{round_no}-{i:05d}"))
            listener.close(writer)
            if listener.error is not None:
                raise RuntimeError(f"{name} failed on {server}") from listener.error
    rows: list[Row] = []
    acks = writer.acks
    rows.append(Row(server, "write ack p50", "PUT round trip", percentile(acks, 50) * 1e3, "ms"))
    rows.append(Row(server, "write ack p99", "PUT round trip", percentile(acks, 99) * 1e3, "ms"))
    base = {p: percentile([x for x in samples["requests continuous"] if x == x], p) for p in (50, 99)}
    for p in (50, 99):
        for name, values in samples.items():
            lost = sum(1 for x in values if x != x)
            got = [x for x in values if x == x]
            value = percentile(got, p) * 1e3 if got else float("inf")
            row = Row(server, f"write->notify p{p} ({len(values):,} writes)", name + (f" ({lost} lost)" if lost else ""),
                      value, "ms", base[p] * 1e3 / value if value else None, "requests continuous")
            if name.startswith("cloudsync") and server == "embedded":
                limit = (3.0 if p == 50 else 10.0) if not name.endswith("longpoll") else (None if p == 50 else 15.0)
                if limit is not None:
                    row.target, row.met = f"<={limit:g} ms", value <= limit and not lost
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arguments(__doc__, "a few writes per contender: checks that it runs")
    parser.add_argument("--writes", type=int, default=None, help="writes per contender (default 1,000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 2)")
    args = parser.parse_args(argv)
    writes = args.writes or (20 if args.quick else 1_000)
    rounds = args.rounds or (1 if args.quick else 2)
    rows: list[Row] = []
    for name, url in each_server(args.servers):
        rows += measure(name, url, writes, rounds)
    print_table(f"Write -> notify latency (ms, all samples of {rounds} interleaved rounds pooled)", rows)
    return rows


if __name__ == "__main__":
    main()
