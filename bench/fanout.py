"""Benchmark 6, the embedded server: change fan-out to many live subscribers, and ``_bulk_docs``
ingest against pouchdb-server. Run: python -m bench.fanout [--quick]

Fan-out: N subscribers (half WebSocket, half eventsource) on one database of the embedded
server, held by a separate process (``bench._fanout_sub``: raw asyncio connections, so the
server's CPU is not shared with client-side parsing in one process); then one document
write at a time. Each delivery's latency runs from just before the write request is sent
(this process) to the moment its bytes reach the subscriber process, both read from
CLOCK_MONOTONIC (``time.monotonic_ns``), which is one clock for every process on Linux.
The target is on the p99 over all deliveries of all measured writes.

Ingest: the same pre-encoded ``_bulk_docs`` bodies POSTed in turn to each server over one
keep-alive connection (``http.client``), a fresh database per round, rounds interleaved
between the servers; docs/s of the best round, ratio embedded/pouchdb.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any
from urllib.parse import quote, urlsplit

from bench._harness import ROOT, SERVERS, Row, interleaved, percentile, print_table

FANOUT_TARGET_MS = 100.0


def raise_fd_limit() -> None:
    """Allow the servers this process starts (they inherit it) a thousand-plus sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


class Http:
    """One keep-alive HTTP/1.1 connection; JSON in and out."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=120)

    def send(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Accept-Encoding": "identity", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def json(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> Any:
        status, data = self.send(method, path, None if body is None else json.dumps(body).encode())
        if status not in expect:
            raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data)

    def close(self) -> None:
        self.conn.close()


# -- fan-out -------------------------------------------------------------------------------


class Subscribers:
    """The subscriber process (``bench._fanout_sub``)."""

    def __init__(self, url: str, db: str, since: str, kinds: list[str]) -> None:
        config = json.dumps({"url": url, "db": db, "since": since, "kinds": kinds})
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        self.proc = subprocess.Popen([sys.executable, "-m", "bench._fanout_sub", config], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self.read()
        if hello.get("failed") or hello.get("connected") != len(kinds):
            self.close()
            raise RuntimeError(f"subscribers failed to connect: {hello}")
        self.kinds: list[str] = hello["kinds"]

    def say(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"subscriber process exited ({self.proc.poll()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.say({"quit": True})
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def fanout(url: str, subscribers: int, writes: int, warmup: int = 2) -> dict[str, Any]:
    """Latencies (ms) of every delivery of ``writes`` single-document writes to ``subscribers`` feeds."""
    db = "bench-fanout"
    http = Http(url)
    http.json("PUT", f"/{db}")
    since = http.json("GET", f"/{db}")["update_seq"]
    kinds = ["websocket" if i % 2 == 0 else "eventsource" for i in range(subscribers)]
    subs = Subscribers(url, db, since, kinds)
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {"websocket": [], "eventsource": []}
    all_have: list[float] = []
    acks: list[float] = []
    missing = 0
    ids = []
    try:
        for i in range(warmup + writes):
            doc_id = f"fan-{i:04d}"
            ids.append(doc_id)
            subs.say({"expect": doc_id, "timeout": 10})
            assert subs.read() == {"armed": True}
            body = json.dumps({"type": "tick", "n": i, "payload": "x" * 100}).encode()
            started = time.monotonic_ns()
            status, data = http.send("PUT", f"/{db}/{quote(doc_id)}", body)
            acked = time.monotonic_ns()
            if status != 201:
                raise RuntimeError(f"write failed: {status} {data!r}")
            report = subs.read()
            if i < warmup:
                continue
            acks.append((acked - started) / 1e6)
            times = [(t - started) / 1e6 if t is not None else None for t in report["times"]]
            missing += sum(t is None for t in times)
            got = [t for t in times if t is not None]
            latencies += got
            for kind, t in zip(subs.kinds, times, strict=True):
                if t is not None:
                    by_kind[kind].append(t)
            all_have.append(max(got) if got else float("inf"))
            time.sleep(0.05)  # let both processes go idle between writes
        subs.say({"verify": ids})
        verified = subs.read()
    finally:
        subs.close()
        try:
            http.send("DELETE", f"/{db}")
        finally:
            http.close()
    return {"latencies": latencies, "by_kind": by_kind, "all_have": all_have, "acks": acks,
            "missing": missing, "verified": verified}


def fanout_rows(server: str, url: str, subscribers: int, writes: int) -> list[Row]:
    result = fanout(url, subscribers, writes)
    lat = result["latencies"]
    verified = result["verified"]
    ok = result["missing"] == 0 and verified["complete"] == verified["of"] == subscribers
    if not ok:
        print(f"fan-out deliveries incomplete: missing={result['missing']} verify={verified}")
    n = f"{subscribers:,} subs x {writes} writes = {len(lat):,} deliveries"
    p99 = percentile(lat, 99) if lat else float("inf")
    rows = [
        Row(server, "write ack (PUT answered)", "p50", percentile(result["acks"], 50), "ms"),
        Row(server, f"fan-out ({n})", "p50", percentile(lat, 50), "ms"),
    ]
    for kind, values in result["by_kind"].items():
        if values:
            rows.append(Row(server, f"fan-out ({n})", f"p99 {kind}", percentile(values, 99), "ms"))
    rows += [
        Row(server, f"fan-out ({n})", "all have it, worst write", max(result["all_have"]), "ms"),
        Row(server, f"fan-out ({n})", "p99", p99, "ms", FANOUT_TARGET_MS / p99 if p99 else None,
            "target", f"<={FANOUT_TARGET_MS:.0f} ms", ok and p99 <= FANOUT_TARGET_MS),
    ]
    return rows


# -- ingest --------------------------------------------------------------------------------


def ingest_bodies(docs: int, batch: int) -> list[bytes]:
    """Pre-encoded ``_bulk_docs`` bodies: client-made ids, a few fields, ~200 bytes a doc."""
    bodies = []
    for start in range(0, docs, batch):
        chunk = [{"_id": f"doc-{i:07d}", "type": "order", "n": i, "total": i * 1.5, "tags": ["a", "b"],
                  "customer": {"name": f"customer {i % 97}", "city": "Lyon"}, "note": "x" * 80}
                 for i in range(start, min(docs, start + batch))]
        bodies.append(json.dumps({"docs": chunk}).encode())
    return bodies


def ingest_rows(urls: dict[str, str], docs: int, batch: int, rounds: int) -> list[Row]:
    bodies = ingest_bodies(docs, batch)
    clients = {name: Http(url) for name, url in urls.items()}
    made: dict[str, list[str]] = {name: [] for name in urls}
    try:
        for name, client in clients.items():  # every round gets a fresh database, made untimed
            for r in range(rounds):
                db = f"bench-ingest-{r}"
                client.json("PUT", f"/{db}")
                made[name].append(db)
        todo = {name: list(dbs) for name, dbs in made.items()}

        def runner(name: str):
            client = clients[name]

            def run() -> int:
                db = todo[name].pop(0)
                # A fresh connection each round: the embedded server closes keep-alive
                # connections left idle (`--idle-timeout`) while the other server's round runs.
                client.close()
                for body in bodies:
                    status, data = client.send("POST", f"/{db}/_bulk_docs", body)
                    if status != 201:
                        raise RuntimeError(f"{name} _bulk_docs: {status} {data[:300]!r}")
                return docs

            return run

        rates = interleaved({name: runner(name) for name in urls}, rounds)
        for name, client in clients.items():
            for db in made[name]:
                count = client.json("GET", f"/{db}")["doc_count"]
                if count != docs:
                    raise RuntimeError(f"{name} {db}: {count} docs after ingest, expected {docs}")
    finally:
        for name, client in clients.items():
            for db in made[name]:
                with contextlib.suppress(OSError, http.client.HTTPException):  # cleanup after a failure
                    client.send("DELETE", f"/{db}")
            client.close()
    measure = f"_bulk_docs ingest ({docs:,} docs, batches of {batch:,})"
    rows = [Row("pouchdb", measure, "pouchdb-server", rates["pouchdb"], "docs/s")] if "pouchdb" in rates else []
    if "embedded" in rates:
        ratio = rates["embedded"] / rates["pouchdb"] if "pouchdb" in rates else None
        rows.append(Row("embedded", measure, "cloudsync.server", rates["embedded"], "docs/s", ratio,
                        "pouchdb-server" if ratio else "", ">=1.00x", None if ratio is None else ratio >= 1.0))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs (< 20 s)")
    parser.add_argument("--subscribers", type=int, help="fan-out subscribers (default 1,000; --quick 50)")
    parser.add_argument("--writes", type=int, help="measured writes (default 20; --quick 3)")
    parser.add_argument("--docs", type=int, help="ingest docs per round (default 50,000; --quick 2,000)")
    parser.add_argument("--rounds", type=int, help="ingest rounds per server (default 3; --quick 1)")
    parser.add_argument("--skip", choices=["fanout", "ingest"], action="append", default=[])
    args = parser.parse_args(argv)
    subscribers = args.subscribers or (50 if args.quick else 1000)
    writes = args.writes or (3 if args.quick else 20)
    docs = args.docs or (2_000 if args.quick else 50_000)
    batch = 500 if args.quick else 1000
    rounds = args.rounds or (1 if args.quick else 3)
    raise_fd_limit()
    rows: list[Row] = []
    with SERVERS["embedded"]() as embedded_url:
        if "fanout" not in args.skip:
            rows += fanout_rows("embedded", embedded_url, subscribers, writes)
        if "ingest" not in args.skip:
            with SERVERS["pouchdb"]() as pouchdb_url:
                rows += ingest_rows({"embedded": embedded_url, "pouchdb": pouchdb_url}, docs, batch, rounds)
    print_table("Embedded server: fan-out and ingest", rows)
    return rows


if __name__ == "__main__":
    main()
