"""Parser cost per change, transport alone, and the long-poll read-ahead on or off.

Not part of ``python -m bench``: one-off measurements behind docs/benchmarks.md's section
on the wire parsers. Three commands::

    python -m bench.parsers record DIR [--changes 20000]
        # feed bodies from the embedded server: continuous, longpoll, eventsource, and
        # the long-poll answer re-written on one line (pouchdb-server's layout)
    python -m bench.parsers cost DIR KIND [--passes 3]
        # KIND: continuous | longpoll | oneline | sse | websocket. Each pass drives the
        # transport's read loop over the recorded body in 64 KiB chunks (no socket);
        # prints CPU microseconds per change. Under callgrind, the instructions of
        # --passes 3 minus --passes 1, halved, per change, leave start-up out.
    python -m bench.parsers readahead [--changes 100000] [--rounds 8] [--doc-bytes 0]
        # LongPollTransport draining pouchdb-server with the read-ahead and with it
        # replaced by a no-op, rounds interleaved (order reversed every other round)

Run from a checkout to measure that checkout's code (the current directory comes first
on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench import _feeds
from bench._harness import embedded, pouchdb
from cloudsync import Client
from cloudsync.transports import ChangesRequest, LastSeq, continuous, longpoll, sse

FEEDS = {"continuous": "continuous", "longpoll": "longpoll", "sse": "eventsource"}


def record(directory: Path, count: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with embedded() as url:
        _feeds.seed(url, "parsers", count)
        session = _feeds.session()
        for kind, feed in FEEDS.items():
            headers = {"Accept": "text/event-stream"} if feed == "eventsource" else {}
            params = {"feed": feed, "since": "0", "timeout": "1000"}
            with session.get(f"{url}/parsers/_changes", params=params, headers=headers, stream=True) as response:
                body = b"".join(response.raw.stream(65536, decode_content=False))
            (directory / f"{kind}.bin").write_bytes(body)
        answer = json.loads((directory / "longpoll.bin").read_bytes())
        (directory / "oneline.bin").write_bytes(json.dumps(answer, separators=(",", ":")).encode())


def websocket_messages(directory: Path, per_message: int = 500) -> list[bytes]:
    """The recorded rows as the embedded server sends them over a WebSocket: arrays
    written a row per line, each followed by a heartbeat message."""
    rows = json.loads((directory / "longpoll.bin").read_bytes())["results"]
    lines = [json.dumps(row, separators=(",", ":")).encode() for row in rows]
    messages = [b"[" + b",\n".join(lines[i : i + per_message]) + b"]" for i in range(0, len(lines), per_message)]
    return [m for message in messages for m in (message, b'""')]


class _Response:
    """An open feed answer whose body is the recorded chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def chunks(self) -> Any:
        return iter(self._chunks)

    def close(self) -> None:
        pass


def cost(directory: Path, kind: str, passes: int) -> None:
    if kind == "websocket":
        from cloudsync.wire.websocket import WebSocketParser

        messages = websocket_messages(directory)

        def one_pass() -> int:
            parser = WebSocketParser()
            return sum(len(parser.feed(message)) for message in messages)

    else:
        body = (directory / f"{kind}.bin").read_bytes()
        chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        module = {"continuous": continuous, "longpoll": longpoll, "oneline": longpoll, "sse": sse}[kind]
        module.open_feed = lambda *args, **kwargs: _Response(chunks)  # type: ignore[attr-defined]

        def one_pass() -> int:
            if kind == "continuous":
                transport: Any = continuous.ContinuousTransport(catch_up=False)
            elif kind == "sse":
                transport = sse.SSETransport()
            else:
                transport = longpoll.LongPollTransport(page_size=None)
            return sum(len(batch) for batch in transport.batches(ChangesRequest(since=0)))

    per_change = []
    for _ in range(passes):
        started = time.process_time()
        count = one_pass()
        per_change.append((time.process_time() - started) / count * 1e6)
    print(f"{kind}: {count} items a pass; CPU µs per change: median {statistics.median(per_change):.3f}, best {min(per_change):.3f}")


class _NoReadAhead:
    """Stands in for longpoll._NextPage: asks for nothing, matches no request."""

    def __init__(self, transport: Any, connection: Any, request: ChangesRequest) -> None:
        self.connection = connection
        self.request = ChangesRequest(since=object())

    def discard(self) -> None:
        pass


def readahead(count: int, rounds: int, doc_bytes: int) -> None:
    real = longpoll._NextPage

    def drain(database: Any, ahead: bool) -> int:
        longpoll._NextPage = real if ahead else _NoReadAhead  # type: ignore[misc]
        transport = longpoll.LongPollTransport()
        transport.attach(database.changes_endpoint())
        since, received = 0, 0
        while received < count:  # pouchdb-server ignores timeout: never ask past the end
            for batch in transport.batches(ChangesRequest(since=since, include_docs=doc_bytes > 0)):
                for item in batch:
                    received += item.__class__ is not LastSeq
                    since = item.seq
        transport.close()
        return received

    with pouchdb() as url:
        _feeds.seed(url, "readahead", count, doc_bytes)
        database = Client(url).database("readahead")
        drain(database, True), drain(database, False)  # pouchdb-server's JIT warms up
        times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for index in range(rounds):
            for ahead in (True, False) if index % 2 == 0 else (False, True):
                wall, cpu = time.perf_counter(), time.process_time()
                assert drain(database, ahead) == count
                times[ahead].append((time.perf_counter() - wall, time.process_time() - cpu))
            (on_wall, on_cpu), (off_wall, off_cpu) = times[True][-1], times[False][-1]
            print(f"round {index}: with {on_wall:.3f}s ({on_cpu:.3f}s CPU), without {off_wall:.3f}s ({off_cpu:.3f}s CPU): {off_wall / on_wall:.3f}x")
        ratios = [off[0] / on[0] for on, off in zip(times[True], times[False], strict=True)]
        print(f"without / with, paired by round: median {statistics.median(ratios):.3f}x (min {min(ratios):.3f}, max {max(ratios):.3f}); "
              f"won {sum(r > 1 for r in ratios)} of {rounds}; client CPU median with {statistics.median(c for _, c in times[True]):.3f}s, "
              f"without {statistics.median(c for _, c in times[False]):.3f}s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("record")
    p.add_argument("directory", type=Path)
    p.add_argument("--changes", type=int, default=20_000)
    p = commands.add_parser("cost")
    p.add_argument("directory", type=Path)
    p.add_argument("kind", choices=["continuous", "longpoll", "oneline", "sse", "websocket"])
    p.add_argument("--passes", type=int, default=3)
    p = commands.add_parser("readahead")
    p.add_argument("--changes", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--doc-bytes", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "record":
        record(args.directory, args.changes)
    elif args.command == "cost":
        cost(args.directory, args.kind, args.passes)
    else:
        readahead(args.changes, args.rounds, args.doc_bytes)


if __name__ == "__main__":
    main()
