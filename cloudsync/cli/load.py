"""`cloudsync load DB FILE.jsonl`: documents from JSON lines into a database, in bounded
`_bulk_docs` batches. Lines that are not JSON objects are reported by number and skipped;
the good ones are written. Exit status 1 when any line or document failed."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from ..database import Database
from ..errors import CloudSyncError
from .arguments import UsageError
from .connection import add_connection_arguments, connect, open_database
from .files import close_input, open_input
from .interrupts import held_interrupt
from .jsonlines import count_lines, parse_object
from .progress import Progress
from .status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

__all__ = ["MAX_BATCH_BYTES", "LoadReport", "add_parser", "run"]

MAX_BATCH_BYTES = 8 * 1024 * 1024
"""Largest `_bulk_docs` body sent: under Cloudant's 10 MB request limit."""

SHOWN_FAILURES = 20
"""Failed lines listed on stderr; more are only counted."""


@dataclass
class LoadReport:
    """What a load did: counts, and the number of lines done (the first failures are printed
    as they happen; the rest only counted, so memory does not grow with them)."""

    written: int = 0
    conflicts: int = 0
    errors: int = 0
    bad_lines: int = 0
    done_lines: int = 0
    """Every line up to this one (from 1) was read and its batch answered."""
    failures: int = 0

    def fail(self, text: str) -> None:
        self.failures += 1
        if self.failures <= SHOWN_FAILURES:
            print(text, file=sys.stderr)

    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.errors or self.bad_lines)

    def summary(self, db: str) -> str:
        hidden = self.failures - SHOWN_FAILURES
        more = f" ({hidden} more failures not shown)" if hidden > 0 else ""
        return (f"loaded {db}: {self.written} written, {self.conflicts} conflicts, {self.errors} errors, "
                f"{self.bad_lines} bad lines{more}")

    def resume_hint(self, db: str, file: str) -> str:
        command = shlex.join(["cloudsync", "load", db, file, "--skip", str(self.done_lines)])
        return f"lines 1-{self.done_lines} are done; to resume: {command}"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("load", help="write the documents of a JSON lines file into a database",
                                 description="Write each line of FILE (a JSON object: a document; with "
                                 "_id and _rev to update one) into DB in _bulk_docs batches.")
    parser.add_argument("db", metavar="DB", help="the database")
    parser.add_argument("file", metavar="FILE", help="a JSON lines file, or - for stdin")
    parser.add_argument("--batch-size", type=int, default=500, metavar="N",
                        help="documents per _bulk_docs request (default 500)")
    parser.add_argument("--skip", type=int, default=0, metavar="N",
                        help="skip the first N lines (to resume an interrupted load)")
    parser.add_argument("--create", action="store_true", help="create DB if it does not exist")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.skip < 0:
        raise UsageError("--batch-size must be at least 1 and --skip 0 or more")
    source = open_input(args.file)
    report = LoadReport(done_lines=args.skip)
    try:
        total = count_lines(source) if source.seekable() else None
        with connect(args) as client:
            db = open_database(client, args.db)
            if args.create:
                db.create_if_missing()
            db.info()  # a missing database fails before anything is read
            with Progress(f"load {args.db}", unit="lines", total=total) as progress:
                progress(args.skip)
                for batch, last_line in batches(source, args.skip, args.batch_size, report):
                    with held_interrupt():  # the batch in flight is answered and counted
                        write_batch(db, batch, report)
                        progress(last_line)
                        report.done_lines = last_line
    except KeyboardInterrupt:
        print(f"{report.summary(args.db)}; interrupted", file=sys.stderr)
        print(report.resume_hint(args.db, args.file), file=sys.stderr)
        return EXIT_INTERRUPTED
    except CloudSyncError:
        if report.done_lines > args.skip:  # stopped part way: say where (main prints the error)
            print(f"{report.summary(args.db)}; stopped", file=sys.stderr)
            print(report.resume_hint(args.db, args.file), file=sys.stderr)
        raise
    finally:
        close_input(source)
    print(report.summary(args.db), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED


def batches(source: IO[bytes], skip: int, size: int,
            report: LoadReport) -> Iterator[tuple[list[tuple[int, dict[str, Any]]], int]]:
    """`([(line number, doc)...], last line number read)` batches of at most `size` documents
    and about [MAX_BATCH_BYTES][cloudsync.cli.load.MAX_BATCH_BYTES]; bad lines go to `report`."""
    batch: list[tuple[int, dict[str, Any]]] = []
    batch_bytes = number = 0
    for number, line in enumerate(source, 1):
        if number <= skip or not line.strip():
            continue
        try:
            doc = parse_object(line)
        except ValueError as exc:
            report.bad_lines += 1
            report.fail(f"line {number}: {exc}")
            continue
        if batch and batch_bytes + len(line) > MAX_BATCH_BYTES:
            yield batch, number - 1
            batch, batch_bytes = [], 0
        batch.append((number, doc))
        batch_bytes += len(line)
        if len(batch) >= size:  # sent at once: a slow stdin must not hold a full batch back
            yield batch, number
            batch, batch_bytes = [], 0
    yield batch, max(number, skip)


def write_batch(db: Database, batch: list[tuple[int, dict[str, Any]]], report: LoadReport) -> None:
    if not batch:
        return
    results = db.bulk([doc for _, doc in batch], batch_size=len(batch))  # one request per batch read
    for (number, _), result in zip(batch, results, strict=True):
        if result.ok:
            report.written += 1
        elif result.error == "conflict":
            report.conflicts += 1
            report.fail(f"line {number}: conflict: document {result.id!r} exists, and the line's _rev is not its current one")
        else:
            report.errors += 1
            report.fail(f"line {number}: {result.error}: {result.reason} (document {result.id!r})")
