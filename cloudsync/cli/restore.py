"""`cloudsync restore FILE DB`: a backup file (couchbackup's format, or ours) into a
database, over [restore()][cloudsync.restore]. Documents keep their revisions, so running
it again is harmless: that is how an interrupted restore resumes."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from ..backups import BackupFileError, restore
from .arguments import UsageError
from .connection import add_connection_arguments, connect, display_url, open_database
from .files import close_input, open_input
from .interrupts import deferred_interrupt
from .progress import Progress
from .status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("restore", help="restore a backup file into a database",
                                 description="Write the documents of FILE, a backup made by 'cloudsync "
                                 "backup' or @cloudant/couchbackup, into DB with their revisions. Running it "
                                 "again changes nothing, so an interrupted restore is resumed that way.")
    parser.add_argument("file", metavar="FILE", help="the backup file, or - for stdin")
    parser.add_argument("db", metavar="DB", help="the database (usually new and empty)")
    parser.add_argument("--create", action="store_true", help="create DB if it does not exist")
    parser.add_argument("--batch-size", type=int, default=500, metavar="N",
                        help="documents per _bulk_docs request (default 500)")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    source = open_input(args.file)
    label = f"restore {args.db}"
    try:
        with connect(args) as client:
            db = open_database(client, args.db)
            if args.create:
                db.create_if_missing()
            db.info()  # a missing database fails before anything is read
            progress = Progress(label, unit="docs")
            try:
                with deferred_interrupt() as point:
                    def report(done: int, total: int | None) -> None:
                        progress(done, total)
                        point.check()  # Ctrl-C stops here, once a batch is stored

                    restored = restore(source, db, progress=report, batch_size=args.batch_size)
            except KeyboardInterrupt:
                progress.close()
                print(f"{label}: {progress.done} documents restored; interrupted", file=sys.stderr)
                print(resume_hint(args), file=sys.stderr)
                return EXIT_INTERRUPTED
            except BackupFileError as exc:
                progress.close()
                name = "stdin" if args.file == "-" else args.file
                print(f"cloudsync restore: error: {name}: {exc}", file=sys.stderr)
                return EXIT_FAILED
            finally:
                progress.close()
    finally:
        close_input(source)
    print(f"restored {restored} documents into {args.db}", file=sys.stderr)
    return EXIT_OK


def resume_hint(args: argparse.Namespace) -> str:
    """A restore resumes by running again: what is on the server already is left as it is."""
    command = ["cloudsync", "restore", args.file, args.db]
    if args.url is not None:
        command += ["--url", display_url(args.url)]
    return f"the documents restored are kept; to resume, run it again: {shlex.join(command)}"
