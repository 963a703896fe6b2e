"""cloudsync in one minute: documents, queries and live changes over every transport.

Starts cloudsync's embedded server (in memory) on a free port, or uses --url.
Run it with:  bash scripts/demo
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time

import cloudsync

TRANSPORTS = ["longpoll", "continuous", "sse", "websocket"]


def documents(db: cloudsync.Database) -> None:
    order = db.create({"type": "order", "customer": "ada", "total": 42})
    print(f"created {order['_id']} at rev {order['_rev']}")
    order = db.update({**order, "total": 43})
    print(f"updated to rev {order['_rev']}")
    try:
        db.update({**order, "_rev": "1-stale", "total": 0})
    except cloudsync.Conflict as error:
        print(f"a stale write is refused: {error.status} {error.error}")
    results = list(db.bulk([{"type": "order", "customer": c, "total": t}
                            for c, t in [("bob", 10), ("cy", 99), ("dee", 250)]]))
    print(f"bulk wrote {sum(r.ok for r in results)} documents")
    db.create_index(["type", "total"], name="by-type-total")
    big = [d["customer"] for d in db.query({"type": "order", "total": {"$gt": 40}},
                                           sort=[{"type": "asc"}, {"total": "asc"}])]
    print(f"orders over 40, by total: {big}")


def live(db: cloudsync.Database, transport: str, count: int = 3) -> None:
    """Subscribe, write `count` documents from another thread, print them as they arrive."""
    received = 0
    with db.subscribe(transport, since="now", include_docs=True) as sub:
        sent_at: dict[str, float] = {}

        def writer() -> None:
            for i in range(count):
                doc_id = f"{transport}-{i}"
                sent_at[doc_id] = time.perf_counter()
                db.create({"_id": doc_id, "via": transport})

        threading.Thread(target=writer, daemon=True).start()
        deadline = time.monotonic() + 10
        for batch in sub.batches(max_size=count, max_wait=0.2):
            for change in batch:
                latency = (time.perf_counter() - sent_at.get(change.id, time.perf_counter())) * 1000
                print(f"  [{transport:>10}] seq={str(change.seq)[:14]:<14} id={change.id:<14} "
                      f"after {latency:5.1f} ms")
                received += 1
            if received >= count or time.monotonic() > deadline:
                break
    if received < count:
        raise SystemExit(f"{transport}: only {received} of {count} changes arrived in 10 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="use this server instead of starting the embedded one")
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from cloudsync.server.testing import serve

            url = stack.enter_context(serve(memory=True)).url
            print(f"embedded server running at {url}")
        client = stack.enter_context(cloudsync.Client(url))
        db = client.create_database("demo", exist_ok=True)
        documents(db)
        print("live changes:")
        for transport in args.transports.split(","):
            live(db, transport)
        client.delete_database("demo")
    print("done")


if __name__ == "__main__":
    main()
