"""Soak: the fault suite's campaign (``tests/faults/scenario.py``) at 1,000+ faults per transport.

Every transport on cloudsync's embedded server (long-poll and continuous also on
pouchdb-server) goes through every fault kind: resets, clean closes, silent half-open
connections, stalls, slow drips, truncation inside a row / a chunk-size line / a
WebSocket frame, canned 503 and 429 answers, and (embedded only) kill -9 and restart on
the same port and data dir. One lane per (server, transport, kind), ``--concurrency`` at
a time. The figures (faults per kind, lost, duplicated, worst time to notice a dead
connection, worst time to the first change after the server is back) are printed and
written into ``docs/reliability.md`` between its ``soak`` markers.

Run: python -m bench.soak [--faults 1000] [--seed N] [--servers embedded,pouchdb]
                          [--concurrency 8] [--budget 900] [--no-write]
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import random
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench._harness import ROOT

DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
KIND_TITLES = {
    "reset": "reset", "close": "clean close", "blackhole": "half-open", "stall": "stall", "drip": "drip",
    "truncate_row": "cut in row", "truncate_chunk": "cut in chunk size", "truncate_frame": "cut in WS frame",
    "http_503": "503", "http_429": "429", "kill": "kill -9", "blackhole_default": "half-open, WS defaults",
}


def _seconds(values: list[float]) -> str:
    if not values:
        return "–"
    worst = max(values)
    return "never" if math.isinf(worst) else f"{worst:.2f} s"


def tables(results: list, seconds: float) -> str:
    """The markdown figures: one row per server and transport."""
    from tests.faults import scenario

    groups: dict[tuple[str, str], list] = collections.defaultdict(list)
    for result in results:
        groups[(result.spec.server, result.spec.transport)].append(result)
    kinds = [k for k in KIND_TITLES if any(r.faults.get(k) for r in results)]
    lines = ["| server | transport | faults | lost | duplicated | after close | not recovered "
             "| worst notice of a dead connection | worst delay by a dead connection "
             "| worst first change after restart | worst close() |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (server, transport), lanes in groups.items():
        lines.append(
            f"| {server} | {transport} | {sum(r.injected for r in lanes):,} | {sum(len(r.lost) for r in lanes)} "
            f"| {sum(len(r.duplicates) for r in lanes)} | {sum(r.after_close for r in lanes)} "
            f"| {sum(len(r.stuck) for r in lanes) + sum(r.error is not None for r in lanes)} "
            f"| {_seconds([s for r in lanes if r.spec.kind == 'blackhole' for s in r.notice_seconds])} "
            f"| {_seconds([s for r in lanes if r.spec.kind == 'blackhole' for s in r.resume_seconds])} "
            f"| {_seconds([s for r in lanes for s in r.recovery_seconds])} "
            f"| {max(r.close_seconds for r in lanes):.3f} s |")
    lines += ["", "Faults per kind:", "",
              "| server | transport | " + " | ".join(KIND_TITLES[k] for k in kinds) + " |",
              "|---|---|" + "---:|" * len(kinds)]
    for (server, transport), lanes in groups.items():
        counts: collections.Counter[str] = collections.Counter()
        for r in lanes:
            counts.update(r.faults)
        lines.append(f"| {server} | {transport} | " + " | ".join(f"{counts.get(k, 0):,}" for k in kinds) + " |")
    total = sum(r.injected for r in results)
    writes = sum(r.writes for r in results)
    delivered = sum(r.delivered for r in results)
    missed = sum(r.missed for r in results)
    lines += ["", f"{total:,} faults in {seconds / 60:.1f} minutes; {writes:,} writes, {delivered:,} changes "
              f"delivered; {sum(r.documents for r in results):,} documents checked for their final revision. "
              f"Half-open faults that hit only idle pooled connections (counted, not timed): {missed}. "
              f"Stall window {scenario.STALL_TIMEOUT:g} s, heartbeat {scenario.HEARTBEAT:g} s."]
    defaults = [r for r in results if r.spec.kind == scenario.BLACKHOLE_DEFAULT]
    if defaults:
        lines.append(f"With the WebSocket transport's default settings (stall window "
                     f"{defaults[0].stall_window:g} s) a dead connection was noticed within "
                     f"{_seconds([s for r in defaults for s in r.notice_seconds])}.")
    return "\n".join(lines)


def write_doc(figures: str, meta: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
    block = f"{BEGIN}\n{meta}\n\n{figures}\n{END}"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", type=int, default=1000, help="at least this many faults per transport")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--servers", default="embedded,pouchdb")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--budget", type=float, default=900.0, help="seconds each lane may spend injecting")
    parser.add_argument("--no-write", action="store_true", help=f"print only; leave {DOC.name} alone")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from cloudsync.server.testing import serve
    from tests.faults import scenario

    seed = args.seed if args.seed is not None else random.randrange(2**32)
    servers = [s for s in args.servers.split(",") if s]
    base = scenario.plan(seed, servers=servers)
    per_transport: collections.Counter[tuple[str, str]] = collections.Counter()
    for spec in base:
        per_transport[(spec.server, spec.transport)] += spec.faults
    scale = args.faults / min(per_transport.values())
    lanes = scenario.plan(seed, scale=scale, servers=servers)
    load = os.getloadavg()
    print(f"soak: seed {seed}, {len(lanes)} lanes, scale {scale:.2f}, load average {load[0]:.1f}", flush=True)

    with ExitStack() as stack:
        urls = {}
        if "embedded" in servers:
            data = stack.enter_context(tempfile.TemporaryDirectory(prefix="cloudsync-soak-"))
            urls["embedded"] = stack.enter_context(serve(data_dir=Path(data) / "main")).url
            kill_server = stack.enter_context(serve(data_dir=Path(data) / "kill"))
        else:
            kill_server = None
        if "pouchdb" in servers:
            from tests._servers.pouchdb import PouchDBServer

            urls["pouchdb"] = stack.enter_context(PouchDBServer()).url
        started = time.monotonic()

        def progress(result: scenario.LaneResult) -> None:
            flag = "" if not (result.lost or result.duplicates or result.stuck or result.error) else "  <-- PROBLEM"
            print(f"{time.monotonic() - started:7.1f}s  {result.spec.name:38s} {result.injected:5d} faults "
                  f"lost={len(result.lost)} dup={len(result.duplicates)} {result.seconds:6.1f}s{flag}", flush=True)

        results = scenario.run_campaign(lanes, urls, kill_server=kill_server, concurrency=args.concurrency,
                                        budget=args.budget, on_result=progress)
        seconds = time.monotonic() - started

    figures = tables(results, seconds)
    print("\n" + figures)
    problems = [r for r in results if r.lost or r.duplicates or r.stuck or r.error or r.after_close
                or r.close_seconds >= 1.0 or r.injected < r.spec.faults]
    for result in problems:
        print("PROBLEM " + result.summary())
    if not args.no_write:
        cpus = os.cpu_count()
        meta = (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with "
                f"`python -m bench.soak --faults {args.faults} --seed {seed} --concurrency {args.concurrency}` "
                f"on {cpus} CPUs (load average {load[0]:.1f} at the start, the machine shared with other work); "
                f"at least {args.faults:,} faults per server and transport.")
        write_doc(figures, meta)
        print(f"\nfigures written to {DOC}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
