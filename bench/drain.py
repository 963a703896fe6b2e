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

Contenders run in turn in every round, in reverse order every other round
(``_harness.rounds``). The table reports each one's median rate in changes/s, and each
ratio is the median over rounds of a paired ratio: the contender's rate over its
baseline's in the same round, seconds apart. Baselines: the best peer SDK of that round
(embedded server: target >= 1.25x for every cloudsync transport) and, on pouchdb-server,
the single raw request (target >= 0.95x, and no slower than the best peer).

Run: python -m bench.drain [--quick] [--servers embedded,pouchdb] [--changes N]
"""

from __future__ import annotations

from bench import _feeds
from bench._harness import Row, arguments, each_server, median, paired_ratio, print_table, rounds

PEERS = ("ibmcloudant", "python-cloudant")


def contenders(server: str, url: str, db: str, count: int, include_docs: bool) -> dict:
    # The single raw request runs next to the cloudsync transports, whose baseline it is
    # on pouchdb-server: the closer in time, the less a swing of the server tells.
    runs = {
        "ibmcloudant": _feeds.ibm_one_off(url, db, count, include_docs),
        "python-cloudant": _feeds.cloudant_feed(url, db, count, include_docs),
        "requests continuous": _feeds.raw_continuous(url, db, count, include_docs),
        "requests normal": _feeds.raw_normal(url, db, count, include_docs),
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


def measure(server: str, url: str, count: int, round_count: int, warmup: int = 0) -> list[Row]:
    rows: list[Row] = []
    for include_docs, db, doc_bytes in ((False, "drain-small", 0), (True, "drain-1k", 1024)):
        seconds = _feeds.seed(url, db, count, doc_bytes)
        print(f"{server}: seeded {db} with {count:,} docs in {seconds:.1f}s", flush=True)
        runs = {name: checked(name, server, run, count) for name, run in contenders(server, url, db, count, include_docs).items()}
        rates = rounds(runs, round_count, warmup=warmup)
        warmup = 0  # the server is warm for the second database
        for name, values in rates.items():
            print(f"  {db} {name}: " + " ".join(f"{v:,.0f}" for v in values) + " changes/s by round", flush=True)
        measure_name = f"drain {count:,}" + (" include_docs 1KB" if include_docs else "") + f", median of {round_count}"
        for name, values in rates.items():
            row = Row(server, measure_name, name, median(values), "changes/s")
            if name.startswith("cloudsync") and server == "pouchdb":
                row.ratio, row.baseline = paired_ratio(rates, name, ("requests normal",)), "requests normal"
                over_peers = paired_ratio(rates, name, PEERS)
                row.target = f">=0.95x, >= best peer ({over_peers:.2f}x)"
                row.met = row.ratio >= 0.95 and over_peers >= 1.0
            elif name.startswith("cloudsync"):
                row.ratio, row.baseline = paired_ratio(rates, name, PEERS), "best peer"
                row.target = ">=1.25x"
                row.met = row.ratio >= 1.25
            else:
                row.ratio, row.baseline = paired_ratio(rates, name, PEERS), "best peer"
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arguments(__doc__, "2,000 changes, one round: checks that it runs")
    parser.add_argument("--changes", type=int, default=None, help="changes per database (default 100,000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of every contender (default 5)")
    args = parser.parse_args(argv)
    count = args.changes or (2_000 if args.quick else 100_000)
    rows: list[Row] = []
    for name, url in each_server(args.servers):
        # Several rounds, each ratio paired within its round: this VM's speed swings by up
        # to 1.5x between runs of the same code, and pouchdb-server's own rate by 2x. Its
        # first round is untimed: it is slowest while its JIT warms up.
        round_count = args.rounds or (1 if args.quick else 5)
        warmup = 1 if name == "pouchdb" and not args.quick else 0
        rows += measure(name, url, count, round_count, warmup)
    print_table("Backlog drain (median changes/s; ratios: median of per-round paired ratios)", rows)
    return rows


if __name__ == "__main__":
    main()
