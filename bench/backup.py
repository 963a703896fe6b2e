"""Benchmark: cloudsync.backup() against couchbackup (Node, @cloudant/couchbackup 2.11.12)
backing up the same database of N documents, full mode, default batch size and parallelism,
in the same run. Target: cloudsync no slower (>= 1.00x couchbackup's docs/s).

Embedded server only: couchbackup cannot back up pouchdb-server 4.2.0 (its changes follower
waits for a ``pending`` count that server never sends, and hangs).

Run: python -m bench.backup [--quick] [--docs N]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench._harness import ROOT, Row, arguments, each_server, paired_ratio, print_table, rounds

COUCHBACKUP = ROOT / "tests" / "node" / "node_modules" / ".bin" / "couchbackup"


def measure(server: str, url: str, count: int, round_count: int) -> list[Row]:
    import cloudsync

    client = cloudsync.Client(url, timeout=(10, 300))
    db = client.create_database("bench-backup", exist_ok=True)
    for start in range(0, count, 2000):
        db.bulk([{"_id": f"doc-{i:08d}", "type": "reading", "seq": i, "payload": "x" * 100}
                 for i in range(start, min(count, start + 2000))]).run()
    work = Path(tempfile.mkdtemp(prefix="cloudsync-bench-backup-"))

    def ours() -> int:
        out = work / "ours.txt"
        written = cloudsync.backup(db, out)
        out.unlink()
        return written

    def theirs() -> int:
        out, log = work / "theirs.txt", work / "theirs.log"
        for path in (out, log):
            path.unlink(missing_ok=True)
        subprocess.run(
            [str(COUCHBACKUP), "--db", db.name, "--output", str(out), "--log", str(log), "--quiet"],
            env={**os.environ, "COUCH_URL": url}, check=True, capture_output=True, timeout=1800,
        )
        return count

    runs = {"couchbackup": theirs, "cloudsync": ours}
    rates = rounds(runs, round_count)
    ratio = paired_ratio(rates, "cloudsync", ("couchbackup",))
    measure_name = f"backup docs/s ({count:,} docs)"
    rows = [
        Row(server, measure_name, "couchbackup", max(rates["couchbackup"]), "docs/s"),
        Row(server, measure_name, "cloudsync", max(rates["cloudsync"]), "docs/s", ratio, "couchbackup",
            ">=1.00x", ratio >= 1.0),
    ]
    shutil.rmtree(work, ignore_errors=True)
    client.delete_database(db.name)
    client.close()
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arguments(__doc__, "1,000 documents, one round: checks that it runs", servers="embedded")
    parser.add_argument("--docs", type=int, default=None)
    args = parser.parse_args(argv)
    count, round_count = (1_000, 1) if args.quick else (100_000, 3)
    if args.docs:
        count = args.docs
    rows: list[Row] = []
    if shutil.which("node") is None or not COUCHBACKUP.exists():
        print("backup benchmark skipped: node or couchbackup is missing (npm ci in tests/node)")
        return [Row("embedded", "backup docs/s", "skipped: no node", 0.0, "docs/s")]
    for name, url in each_server(args.servers):
        rows += measure(name, url, count, round_count)
    print_table("Backup", rows)
    return rows


if __name__ == "__main__":
    main()
