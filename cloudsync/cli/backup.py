"""`cloudsync backup DB FILE`: a database into a file in `@cloudant/couchbackup`'s format,
over [backup()][cloudsync.backup]. Ctrl-C stops after the batch being written; a full
backup into a file then resumes with `--resume`."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from ..backups import backup
from .arguments import UsageError
from .connection import add_connection_arguments, connect, display_url, open_database
from .interrupts import deferred_interrupt
from .progress import Progress
from .status import EXIT_INTERRUPTED, EXIT_OK

__all__ = ["add_parser", "resume_hint", "run"]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("backup", help="back a database up into a file (couchbackup's format)",
                                 description="Write every document of DB into FILE, in the format of "
                                 "@cloudant/couchbackup (couchrestore and 'cloudsync restore' read it). "
                                 "Ctrl-C stops; stderr then says how to resume.")
    parser.add_argument("db", metavar="DB", help="the database")
    parser.add_argument("file", metavar="FILE", help="the backup file, or - for stdout")
    parser.add_argument("--mode", choices=("full", "shallow"), default="full",
                        help="full (the default): every leaf revision, conflicts and deletions with their "
                        "history, resumable; shallow: each document's winning revision, faster")
    parser.add_argument("--resume", action="store_true",
                        help="go on with an interrupted full backup, appending to FILE")
    parser.add_argument("--log-file", metavar="PATH",
                        help="the log a full backup resumes from (default: FILE.log; needed with -)")
    parser.add_argument("--attachments", action="store_true",
                        help="put attachments' content in the file (default: their stubs only)")
    parser.add_argument("--batch-size", type=int, default=500, metavar="N",
                        help="documents per request and per line of the file (default 500)")
    parser.add_argument("--parallelism", type=int, default=5, metavar="N",
                        help="batches fetched at the same time (default 5)")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.parallelism < 1:
        raise UsageError("--batch-size and --parallelism must be at least 1")
    if args.mode == "shallow" and (args.resume or args.log_file):
        raise UsageError("a shallow backup keeps no log: --resume and --log-file are for --mode full")
    if args.file == "-" and args.resume and not args.log_file:
        raise UsageError("--resume to stdout needs the --log-file of the interrupted backup")
    out = sys.stdout.buffer if args.file == "-" else args.file
    label = f"backup {args.db}"
    with connect(args) as client:
        db = open_database(client, args.db)
        db.info()  # a missing database fails before any progress is shown
        progress = Progress(label, unit="docs")
        try:
            # Until the first batch is in the file there is nothing to keep (a listing cut
            # short is started over): Ctrl-C stops at once. Then it stops between batches.
            with deferred_interrupt(held=False) as point:
                def report(done: int, total: int | None) -> None:
                    progress(done, total)
                    point.check()  # Ctrl-C stops here: the batch is in the file and the log
                    point.held = True

                written = backup(db, out, progress=report, mode=args.mode, log_file=args.log_file,
                                 resume=args.resume, batch_size=args.batch_size, parallelism=args.parallelism,
                                 attachments=args.attachments)
        except KeyboardInterrupt:
            progress.close()
            print(f"{label}: interrupted", file=sys.stderr)
            print(resume_hint(args), file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            progress.close()
    where = "stdout" if args.file == "-" else args.file
    how = f"{args.mode}, resumed" if args.resume else args.mode
    print(f"backed up {args.db} to {where}: {written} document revisions written ({how})", file=sys.stderr)
    return EXIT_OK


def resume_hint(args: argparse.Namespace) -> str:
    """How to go on after an interruption: `--resume` for a full backup with a log to read,
    else start over."""
    if args.mode == "shallow" or (args.file == "-" and not args.log_file):
        why = "a shallow backup" if args.mode == "shallow" else "a backup to stdout without --log-file"
        return f"{why} cannot be resumed: run it again to start over"
    command = ["cloudsync", "backup", args.db, args.file, "--resume"]
    if args.log_file:
        command += ["--log-file", args.log_file]
    if args.attachments:
        command.append("--attachments")
    if args.url is not None:
        command += ["--url", display_url(args.url)]  # never echo credentials a URL may carry
    hint = f"to resume: {shlex.join(command)}"
    return hint + " >> (the same file)" if args.file == "-" else hint
