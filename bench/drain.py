"""Benchmark 1, backlog drain: time to receive every change of a database from seq 0.

A database of N small documents (changes only), and one of N ~1 KB documents read with
``include_docs``; the same seeded databases serve every contender in the run:

- ``requests normal``: one ``feed=normal`` GET + ``json.loads`` (on pouchdb-server, about
  what the server itself can give);
- ``requests continuous``: ``feed=continuous`` streamed, ``json.loads`` per line (the floor
  for a client that builds nothing);
- ``ibmcloudant``: ``ChangesFollower.start_one_off()``; ``python-cloudant``: ``Feed``
  (continuous);
- ``cloudsync <transport>``: ``db.subscribe(transport, since=0)`` iterated.

Contenders run in turn in every round (``interleaved``); the table reports each one's
BEST round in changes/s. Ratios: against the best peer SDK (embedded server: target
>= 1.25x for every cloudsync transport) and, on pouchdb-server, against the single raw
request (target >= 0.95x, and no slower than any peer).

Run: python -m bench.drain [--quick] [--servers embedded,pouchdb] [--changes N]
"""

from __future__ import annotations

from bench import _feeds
from bench._harness import Row, arguments, each_server, interleaved, print_table

PEERS = ("ibmcloudant", "python-cloudant")


def contenders(server: str, url: str, db: str, count: int, include_docs: bool) -> dict:
    runs = {
        "requests normal": _feeds.raw_normal(url, db, count, include_docs),
        "requests continuous": _feeds.raw_continuous(url, db, count, include_docs),
        "ibmcloudant": _feeds.ibm_one_off(url, db, count, include_docs),
        "python-cloudant": _feeds.cloudant_feed(url, db, count, include_docs),
    }
    for transport in _feeds.transports_for(server):
        runs[f"cloudsync {transport}"] = _feeds.cloudsync_drain(url, db, count, include_docs, transport)
    return runs


def checked(name: str, server: str, run, count: int):
    """``run``, failing loudly unless it really received ``count`` changes."""

    def wrapper() -> int:
        got = run()
        if got != count:
            raise RuntimeError(f"{name} received {got:,} of {count:,} changes on {server}")
        return got

    return wrapper


def measure(server: str, url: str, count: int, rounds: int, warmup: int = 0) -> list[Row]:
    rows: list[Row] = []
    for include_docs, db, doc_bytes in ((False, "drain-small", 0), (True, "drain-1k", 1024)):
        seconds = _feeds.seed(url, db, count, doc_bytes)
        print(f"{server}: seeded {db} with {count:,} docs in {seconds:.1f}s", flush=True)
        runs = {name: checked(name, server, run, count) for name, run in contenders(server, url, db, count, include_docs).items()}
        rates = interleaved(runs, rounds, warmup)
        warmup = 0  # the server is warm for the second database
        measure_name = f"drain {count:,}" + (" include_docs 1KB" if include_docs else "") + f", best of {rounds}"
        best_peer = max(rates[p] for p in PEERS)
        floor = rates["requests normal"]
        for name, rate in rates.items():
            row = Row(server, measure_name, name, rate, "changes/s")
            if name.startswith("cloudsync"):
                if server == "pouchdb":
                    row.ratio, row.baseline = rate / floor, "requests normal"
                    row.target = ">=0.95x, >= every peer"
                    row.met = row.ratio >= 0.95 and rate >= best_peer
                else:
                    row.ratio, row.baseline = rate / best_peer, "best peer"
                    row.target = ">=1.25x"
                    row.met = row.ratio >= 1.25
            else:
                row.ratio, row.baseline = rate / best_peer, "best peer"
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arguments(__doc__, "2,000 changes, one round: checks that it runs")
    parser.add_argument("--changes", type=int, default=None, help="changes per database (default 100,000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of every contender (default 5; pouchdb 4)")
    args = parser.parse_args(argv)
    count = args.changes or (2_000 if args.quick else 100_000)
    rows: list[Row] = []
    for name, url in each_server(args.servers):
        # Best of several rounds: this VM's speed swings by up to 1.5x between runs of the
        # same code. pouchdb-server drains 5-10x slower, so it gets fewer, after one
        # untimed round: its own rate swings 2x, lowest in its first rounds.
        rounds = args.rounds or (1 if args.quick else 4 if name == "pouchdb" else 5)
        warmup = 1 if name == "pouchdb" and not args.quick else 0
        rows += measure(name, url, count, rounds, warmup)
    print_table("Backlog drain (changes/s, best of interleaved rounds)", rows)
    return rows


if __name__ == "__main__":
    main()
