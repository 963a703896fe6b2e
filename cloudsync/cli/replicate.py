"""`cloudsync replicate SOURCE TARGET`: every revision of SOURCE that TARGET lacks, over
[Replication][cloudsync.Replication]. One-shot by default; `--continuous` follows SOURCE
until Ctrl-C. Either way Ctrl-C stops once the batch in flight is written and recorded in
the checkpoints, so the same command run again resumes from there."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from typing import Any

from ..replication import Replication, ReplicationProgress
from ..transports import available_transports
from .arguments import UsageError, json_argument
from .connection import add_connection_arguments, connect, database_url, display_url, open_database
from .progress import Progress
from .status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

__all__ = ["POLL_INTERVAL", "add_parser", "run", "summary"]

POLL_INTERVAL = 0.5
"""Seconds between two looks at the replication's progress (and at a pending Ctrl-C)."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("replicate", help="copy a database's revisions into another, once or continuously",
                                 description="Copy every revision of SOURCE that TARGET lacks (conflicts, "
                                 "deletions, attachments), over the CouchDB replication protocol, with "
                                 "checkpoints on both sides: run again, it resumes where it stopped. SOURCE "
                                 "and TARGET are database names on --url, or database URLs "
                                 "(http://host:5984/DB), each with its own user:password@ if need be.")
    parser.add_argument("source", metavar="SOURCE", help="the database to read: a name, or a database URL")
    parser.add_argument("target", metavar="TARGET", help="the database to write: a name, or a database URL")
    parser.add_argument("--continuous", action="store_true",
                        help="keep following SOURCE's changes until Ctrl-C")
    parser.add_argument("--create-target", action="store_true", help="create TARGET if it does not exist")
    parser.add_argument("--selector", metavar="JSON", help="only documents matching this Mango selector")
    parser.add_argument("--doc-ids", metavar="ID,ID,...", help="only these documents")
    parser.add_argument("--batch-size", type=int, default=500, metavar="N",
                        help="changes per batch (default 500)")
    parser.add_argument("--transport", default="longpoll", choices=available_transports(),
                        help="how --continuous follows SOURCE (default longpoll)")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    selector = json_argument(args.selector, "--selector") if args.selector is not None else None
    if selector is not None and not isinstance(selector, dict):
        raise UsageError(f"--selector must be a JSON object, not {args.selector}")
    doc_ids = [i.strip() for i in args.doc_ids.split(",") if i.strip()] if args.doc_ids is not None else None
    if selector is not None and doc_ids is not None:
        raise UsageError("use --selector or --doc-ids, not both")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    (source_server, source_name), (target_server, target_name) = (database_url(args.source, args),
                                                                  database_url(args.target, args))
    label = f"replicate {shown(args.source)} -> {shown(args.target)}"
    with connect(args, source_server) as source_client, connect(args, target_server) as target_client:
        rep = Replication(open_database(source_client, source_name), open_database(target_client, target_name),
                          continuous=args.continuous, selector=selector, doc_ids=doc_ids,
                          create_target=args.create_target, batch_size=args.batch_size, transport=args.transport)
        stop = threading.Event()
        # A signal ignored by whoever started us (`nohup`, `&` in a script) stays ignored.
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
                    if signal.getsignal(sig) is not signal.SIG_IGN}
        try:
            rep.start()  # a missing database fails here, before any progress is shown
            with Progress(label, unit="docs") as progress:
                if args.continuous:
                    print(f"{label}: continuous; Ctrl-C stops", file=sys.stderr, flush=True)
                # Stopping is the replication's own: the batch in flight is written and the
                # checkpoints saved before wait() says it is done.
                while not rep.wait(POLL_INTERVAL):
                    progress(rep.progress.docs_written)
                    if stop.is_set():
                        rep.stop()
                progress(rep.progress.docs_written)
        finally:
            if rep.state not in ("completed", "stopped", "failed"):
                rep.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    report = rep.progress
    print(summary(report), file=sys.stderr)
    if stop.is_set() and not args.continuous:
        print(f"interrupted; to resume: {resume_command(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if stop.is_set():
        print(f"stopped; to go on: {resume_command(args)}", file=sys.stderr)
    return EXIT_FAILED if report.doc_write_failures else EXIT_OK


def summary(report: ReplicationProgress) -> str:
    """What a replication did, on one line."""
    return (f"replication {report.state.value}: {report.changes_read} changes read, {report.docs_read} revisions "
            f"read, {report.docs_written} written, {report.doc_write_failures} refused by the target, "
            f"{report.errors} errors retried; checkpoint at seq {report.checkpointed_seq}")


def shown(database: str) -> str:
    """A SOURCE or TARGET fit to print: a URL without its credentials."""
    return display_url(database) if database.startswith(("http://", "https://")) else database


def resume_command(args: argparse.Namespace) -> str:
    """The same command (without credentials): it resumes from the checkpoints."""
    command = ["cloudsync", "replicate", shown(args.source), shown(args.target)]
    for flag in ("continuous", "create_target"):
        if getattr(args, flag):
            command.append("--" + flag.replace("_", "-"))
    for option in ("selector", "doc_ids"):
        if getattr(args, option) is not None:
            command += ["--" + option.replace("_", "-"), getattr(args, option)]
    if args.continuous and args.transport != "longpoll":
        command += ["--transport", args.transport]
    if args.url is not None:
        command += ["--url", display_url(args.url)]
    return shlex.join(command)
