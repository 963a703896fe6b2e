"""A terminal view of the 10 largest open orders, redrawn as orders change.

Starts cloudsync's embedded server (in memory) on a free port, or uses --url; a writer
thread creates, updates, closes and deletes random orders while the view follows them
with a live query. Run it with:

    python examples/top_orders.py              # about 10 seconds of changes
    python examples/top_orders.py --writes 0   # just the first view
"""

from __future__ import annotations

import argparse
import contextlib
import random
import threading

import cloudsync

SELECTOR = {"type": "order", "status": "open", "total": {"$gte": 0}}


def draw(results: list[dict], events: list[cloudsync.LiveQueryEvent]) -> None:
    """Clear the screen (when it is a terminal) and print the view."""
    changed = ", ".join(f"{e.kind} {e.id}" for e in events) or "first view"
    print("\x1b[2J\x1b[H" if _tty() else "", end="")
    print(f"top {len(results)} open orders ({changed})")
    for rank, order in enumerate(results, 1):
        print(f"{rank:>3}. {order['_id']:<10} {order['customer']:<8} {order['total']:>7.2f}")
    print(flush=True)


def _tty() -> bool:
    import sys

    return sys.stdout.isatty()


def write_orders(db: cloudsync.Database, writes: int, seed: int, pause: float) -> None:
    """Random order traffic: new orders, new totals, closed and deleted orders."""
    rng = random.Random(seed)
    stop = threading.Event()
    for _ in range(writes):
        orders = [row["doc"] for row in db.all_docs(include_docs=True) if not row["id"].startswith("_")]
        roll = rng.random()
        if not orders or roll < 0.4:
            db.create({"type": "order", "status": "open", "customer": rng.choice(["ada", "bob", "cy", "dee"]),
                       "total": round(rng.uniform(1, 500), 2)})
        elif roll < 0.7:
            db.update({**rng.choice(orders), "total": round(rng.uniform(1, 500), 2)})
        elif roll < 0.9:
            db.update({**rng.choice(orders), "status": "closed"})
        else:
            db.delete(rng.choice(orders))
        stop.wait(pause)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="use this server instead of starting the embedded one")
    parser.add_argument("--writes", type=int, default=60)
    parser.add_argument("--pause", type=float, default=0.15, help="seconds between writes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--transport", default="sse")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from cloudsync.server.testing import serve

            url = stack.enter_context(serve(memory=True)).url
        client = stack.enter_context(cloudsync.Client(url))
        db = client.create_database("shop", exist_ok=True)
        db.create_index(["total"])  # a sorted query needs an index on its sort fields
        write_orders(db, 15, args.seed, 0)

        lq = stack.enter_context(db.live_query(SELECTOR, sort=[{"total": "desc"}], limit=10,
                                               transport=args.transport))
        draw(lq.results, [])
        lq.on_change(lambda events: draw(lq.results, events))
        write_orders(db, args.writes, args.seed + 1, args.pause)
        # Wait until the view has caught up with the last write, then show it once more.
        final = list(db.query(SELECTOR, sort=[{"total": "desc"}], limit=10))
        if not lq.wait_for(lambda results: results == final, 30):
            raise SystemExit("the view did not catch up with the writes")
        return lq.results


if __name__ == "__main__":
    main()
