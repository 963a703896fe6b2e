"""Store a live WebSocket stream in a database, and watch it arrive.

The whole pipeline on one machine: a small event source (a WebSocket server on
127.0.0.1 sending sensor readings), a reader that puts each event into a
`db.writer()` (batched `_bulk_docs` from a background thread), and a subscription on
another thread that prints what the database received. The embedded server is started
here too (in memory). Needs the server extra (`aiohttp`).

    python examples/stream_to_db.py --events 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import threading
from collections.abc import Iterator

import websocket  # websocket-client, a cloudsync dependency
from aiohttp import web

import cloudsync
from cloudsync.server.testing import serve


@contextlib.contextmanager
def event_source(count: int, interval: float = 0.001) -> Iterator[str]:
    """A WebSocket server on 127.0.0.1 that sends `count` JSON events to each client,
    then closes; yields its URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for i in range(count):
            reading = {"type": "reading", "sensor": f"s{i % 4}", "seq": i, "value": round(random.random() * 100, 2)}
            await ws.send_str(json.dumps(reading))
            await asyncio.sleep(interval)
        await ws.close()
        return ws

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/events", stream)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        holder.update(runner=runner, url=f"ws://127.0.0.1:{port}/events")
        started.set()

    thread = threading.Thread(target=loop.run_forever, name="event-source", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield str(holder["url"])
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(timeout=10)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def watch(db: cloudsync.Database, expected: int, seen: list[str], ready: threading.Event) -> None:
    """Print each stored event as its change arrives, until `expected` have."""
    with db.subscribe("websocket", since=0, include_docs=True) as sub:
        ready.set()
        for change in sub:
            if change.doc is None or change.doc.get("type") != "reading":
                continue
            seen.append(change.id)
            if len(seen) % 100 == 0 or len(seen) == expected:
                doc = change.doc
                print(f"stored #{len(seen)}: sensor {doc['sensor']} seq {doc['seq']} value {doc['value']}")
            if len(seen) >= expected:
                return


def run(events: int, timeout: float = 60.0) -> int:
    """Stream `events` events into a fresh database; return how many the subscription saw."""
    with serve(memory=True) as server, cloudsync.Client(server.url) as client, event_source(events) as source:
        db = client.create_database("readings")
        seen: list[str] = []
        ready = threading.Event()
        watcher = threading.Thread(target=watch, args=(db, events, seen, ready), name="watcher", daemon=True)
        watcher.start()
        ready.wait(timeout)

        stream = websocket.create_connection(source, timeout=timeout)
        with db.writer(batch_size=100, flush_interval=0.2) as writer:
            try:
                while True:
                    try:
                        message = stream.recv()
                    except websocket.WebSocketConnectionClosedException:
                        break
                    if not message:  # the source closed the stream
                        break
                    event = json.loads(message)
                    event["_id"] = f"reading-{event['seq']:08d}"  # our own id: a resend stores it once
                    writer.put(event)
            finally:
                stream.close()
        print(f"writer: {writer.written} written in {writer.batches} batches, {writer.failed} failed")
        watcher.join(timeout)
        print(f"subscription saw {len(seen)} of {events}")
        return len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500)
    args = parser.parse_args()
    run(args.events)


if __name__ == "__main__":
    main()
