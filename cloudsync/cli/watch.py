"""`cloudsync watch DB`: a database's changes as JSON lines on stdout, live, over a
[Subscription][cloudsync.Subscription]. SIGINT or SIGTERM stops it; stderr then says the
seq of the last change printed and how to go on from there."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from typing import Any

from ..models import Change
from ..transports import available_transports
from .arguments import json_argument, seq_argument
from .connection import add_connection_arguments, connect, display_url, open_database
from .jsonlines import write_line

__all__ = ["add_parser", "change_line", "run"]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("watch", help="print a database's changes as JSON lines, live",
                                 description="Print each change of DB as one JSON line on stdout, as it "
                                 "happens. Ctrl-C stops; stderr then says how to resume.")
    parser.add_argument("db", metavar="DB", help="the database")
    parser.add_argument("--transport", default="longpoll", choices=available_transports(),
                        help="how to follow the feed (default longpoll)")
    parser.add_argument("--since", default="now", type=seq_argument, metavar="SEQ",
                        help="'now' (the default), 0 for every change, or a seq printed before")
    parser.add_argument("--selector", metavar="JSON", help="only changes of documents matching this Mango selector")
    parser.add_argument("--include-docs", action="store_true", help="print each change with its document")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def change_line(change: Change, include_docs: bool) -> dict[str, Any]:
    """A change as the JSON object `watch` prints."""
    line: dict[str, Any] = {"seq": change.seq, "id": change.id, "rev": change.rev}
    if change.deleted:
        line["deleted"] = True
    if include_docs:
        line["doc"] = change.doc
    return line


def run(args: argparse.Namespace) -> int:
    selector = json_argument(args.selector, "--selector") if args.selector is not None else None
    with connect(args) as client:
        db = open_database(client, args.db)
        db.info()  # a missing database or wrong credentials fail here, not in a retry loop
        sub = db.subscribe(args.transport, since=args.since, include_docs=args.include_docs, selector=selector)
        # Changes are printed on the subscription's delivery thread; this thread waits for a
        # signal or the end, so Ctrl-C never interrupts a change half-printed.
        printed = {"seq": sub.last_seq}
        stop = threading.Event()
        failure: list[BaseException] = []

        def on_change(change: Change) -> None:
            write_line(change_line(change, args.include_docs))
            printed["seq"] = change.seq

        def on_error(exc: BaseException) -> None:
            failure.append(exc)
            stop.set()

        # A signal ignored by whoever started us (`nohup`, `&` in a script) stays ignored.
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
                    if signal.getsignal(sig) is not signal.SIG_IGN}
        try:
            sub.start(on_change, on_error)
            print(f"watching {args.db} from seq {printed['seq']}; Ctrl-C stops", file=sys.stderr, flush=True)
            while not stop.wait(1.0):  # woken by a signal handler or on_error
                pass
        finally:
            sub.close(timeout=5.0)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        print(resume_hint(args, printed["seq"]), file=sys.stderr, flush=True)
        if failure:
            raise failure[0]
        return 0


def resume_hint(args: argparse.Namespace, seq: Any) -> str:
    """Where the watch stopped, and the command that goes on from there."""
    command = ["cloudsync", "watch", args.db, "--since", str(seq)]
    if args.transport != "longpoll":
        command += ["--transport", args.transport]
    if args.selector is not None:
        command += ["--selector", args.selector]
    if args.include_docs:
        command.append("--include-docs")
    if args.url is not None:
        command += ["--url", display_url(args.url)]  # never echo credentials a URL may carry
    return f"stopped after seq {seq}; to resume: {shlex.join(command)}"
