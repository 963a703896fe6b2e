"""Measure ``/_up`` latency while each of issue #12's freezing requests runs.

    python -m bench.server_freeze [--docs 50000] [--query-timeout 10]

Starts a server (``--memory``), loads the issue's data sets, then for each hostile request
probes ``GET /_up`` in a loop on one keep-alive connection while the request runs on a
thread; prints the request's status and time, the probes' p50/p99/max, the server's peak
RSS growth, and the machine's load average. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

from cloudsync.server.testing import serve


def _kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(url: str, pid: int, name: str, hostile: Callable[[], requests.Response]) -> dict[str, object]:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    rss = _kib(pid, "VmRSS")
    lat: list[float] = []
    with ThreadPoolExecutor(1) as pool, requests.Session() as http:
        http.get(url + "/_up")
        started = time.perf_counter()
        fut = pool.submit(hostile)
        while not fut.done():
            t = time.perf_counter()
            http.get(url + "/_up", timeout=30)
            lat.append(time.perf_counter() - t)
        r = fut.result()
        took = time.perf_counter() - started
    lat.sort()
    return {
        "case": name, "status": r.status_code, "error": r.json().get("error") if r.status_code >= 400 else None,
        "took_s": round(took, 2), "probes": len(lat),
        "up_p50_ms": round(lat[(len(lat) - 1) // 2] * 1000, 1) if lat else None,
        "up_p99_ms": round(lat[int(0.99 * (len(lat) - 1))] * 1000, 1) if lat else None,
        "up_max_ms": round(lat[-1] * 1000, 1) if lat else None,
        "peak_rss_growth_mb": round((_kib(pid, "VmHWM") - rss) / 1024, 1),
        "load": os.getloadavg()[0],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--docs", type=int, default=50_000)
    p.add_argument("--query-timeout", default="10")
    p.add_argument("--only", help="run only the cases whose name contains this")
    p.add_argument("extra", nargs="*", help="more server options (after --)")
    args = p.parse_args()
    with serve(memory=True, extra_args=("--query-timeout", args.query_timeout, *args.extra)) as server:
        url = server.url
        pid = server.pid
        assert pid is not None
        requests.put(url + "/big")
        for i in range(0, args.docs, 5000):
            requests.post(url + "/big/_bulk_docs", json={"docs": [
                {"_id": f"d{j:06}", "n": j, "s": "a" * 25 + "!", "tags": [j % 7, j % 11]}
                for j in range(i, min(i + 5000, args.docs))]})
        requests.put(url + "/arr")
        requests.put(url + "/arr/one", data=json.dumps({"arr": list(range(1_000_000))}))
        post = requests.post
        def idle() -> requests.Response:
            time.sleep(3)
            return requests.get(url + "/_up")

        cases: list[tuple[str, Callable[[], requests.Response]]] = [
            ("baseline: nothing else running (3 s)", idle),
            ("$regex (a+)+$ over 26-char strings", lambda: post(url + "/big/_find", json={
                "selector": {"s": {"$regex": "(a+)+$"}}})),
            ("$in 20,000 values", lambda: post(url + "/big/_find", json={
                "selector": {"n": {"$in": list(range(0, 40_000, 2))}}, "limit": 100_000})),
            ("$or 5,000 equality branches", lambda: post(url + "/big/_find", json={
                "selector": {"$or": [{"n": i} for i in range(0, 10_000, 2)]}, "limit": 100_000})),
            ("$or 5,000 mixed branches", lambda: post(url + "/big/_find", json={
                "selector": {"$or": [{"n": i, "s": {"$regex": f"^{i}"}} if i % 2 else
                                     {"tags": {"$elemMatch": {"$eq": i}}} for i in range(5000)]},
                "limit": 100_000})),
            ("$in 1,000 vs 1,000,000-element array", lambda: post(url + "/arr/_find", json={
                "selector": {"arr": {"$in": list(range(-1000, 0))}}})),
            ("_all_docs 20,000 keys", lambda: post(url + "/big/_all_docs", json={
                "keys": [f"d{i:06}" for i in range(20_000)], "include_docs": True})),
            ("_bulk_get 20,000", lambda: post(url + "/big/_bulk_get", json={
                "docs": [{"id": f"d{i:06}"} for i in range(20_000)]})),
            ("_changes selector filter", lambda: post(url + "/big/_changes?filter=_selector", json={
                "selector": {"s": {"$regex": "(a+)+$"}, "tags": {"$in": list(range(3, 2000))}}})),
            ("deep JSON body", lambda: post(url + "/big/_find", data="[" * 100_000 + "]" * 100_000,
                                            headers={"Content-Type": "application/json"})),
        ]
        for name, hostile in cases:
            if args.only and args.only not in name:
                continue
            print(json.dumps(measure(url, pid, name, hostile)), flush=True)


if __name__ == "__main__":
    main()
