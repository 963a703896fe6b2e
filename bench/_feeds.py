"""What the feed benchmarks (drain, latency, recovery, memory) share: seeding, and the
raw / peer / cloudsync feed readers.

Fairness: every contender asks for ``Accept-Encoding: identity``. pouchdb-server gzips
(and so buffers) streamed feeds otherwise; cloudsync's transports always send it, so
the raw ``requests`` sessions and both peers' sessions get it set here too. Everything
else is each library's default (python-cloudant's ``Feed`` reads with its default
512-byte ``iter_lines`` chunks; ibmcloudant's ``ChangesFollower`` pages ``feed=normal``
with its own batch size).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests

IDENTITY = {"Accept-Encoding": "identity"}
JSON_HEADERS = {"Content-Type": "application/json", **IDENTITY}
HTTP_TRANSPORTS = ("longpoll", "continuous")
ALL_TRANSPORTS = ("longpoll", "continuous", "sse", "websocket")


def transports_for(server: str) -> tuple[str, ...]:
    """pouchdb-server has no eventsource or websocket feed."""
    return HTTP_TRANSPORTS if server == "pouchdb" else ALL_TRANSPORTS


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers.update(IDENTITY)
    return s


def seed(url: str, db: str, count: int, doc_bytes: int = 0, batch: int = 2_000) -> float:
    """Create ``db`` with ``count`` documents (each padded to about ``doc_bytes``) through
    ``_bulk_docs`` with pre-encoded bodies; returns the seconds it took."""
    s = session()
    r = s.put(f"{url}/{db}")
    if r.status_code not in (201, 202, 412):
        r.raise_for_status()
    pad = json.dumps("x" * max(0, doc_bytes - 40))
    started = time.perf_counter()
    for start in range(0, count, batch):
        docs = ",".join(f'{{"_id":"d{i:09d}","n":{i},"pad":{pad}}}' for i in range(start, min(count, start + batch)))
        r = s.post(f"{url}/{db}/_bulk_docs", data=('{"docs":[' + docs + "]}").encode(), headers=JSON_HEADERS)
        r.raise_for_status()
    s.close()
    return time.perf_counter() - started


# -- drain contenders: each returns a function that reads `count` changes from seq 0 --------------
def raw_normal(url: str, db: str, count: int, include_docs: bool) -> Callable[[], int]:
    """One ``feed=normal`` request, the body parsed by ``json.loads`` (what one GET costs)."""
    s = session()

    def run() -> int:
        params = {"include_docs": "true"} if include_docs else {}
        r = s.get(f"{url}/{db}/_changes", params=params)
        r.raise_for_status()
        return min(count, len(json.loads(r.content)["results"]))

    return run


def raw_continuous(url: str, db: str, count: int, include_docs: bool) -> Callable[[], int]:
    """``requests`` streaming ``feed=continuous``, ``json.loads`` per line (the client floor)."""
    s = session()

    def run() -> int:
        params = {"feed": "continuous", "heartbeat": "5000"}
        if include_docs:
            params["include_docs"] = "true"
        n = 0
        with s.get(f"{url}/{db}/_changes", params=params, stream=True) as r:
            r.raise_for_status()
            for line in r.iter_lines(chunk_size=65536):
                if line:
                    row = json.loads(line)
                    if "id" in row:
                        n += 1
                        if n == count:
                            break
        return n

    return run


def ibm_service(url: str) -> Any:
    from ibm_cloud_sdk_core.authenticators import NoAuthAuthenticator
    from ibmcloudant.cloudant_v1 import CloudantV1

    service = CloudantV1(authenticator=NoAuthAuthenticator())
    service.set_service_url(url)
    service.set_default_headers(IDENTITY)
    return service


def ibm_one_off(url: str, db: str, count: int, include_docs: bool) -> Callable[[], int]:
    """ibmcloudant ``ChangesFollower(...).start_one_off()`` (pages of ``feed=normal``)."""
    from ibmcloudant.features.changes_follower import ChangesFollower

    service = ibm_service(url)

    def run() -> int:
        follower = ChangesFollower(service, db=db, include_docs=include_docs, limit=count)
        n = 0
        for _ in follower.start_one_off():
            n += 1
            if n == count:
                break
        stop_follower(follower)
        return n

    return run


def stop_follower(follower: Any, timeout: float = 5.0) -> None:
    """``follower.stop()`` without hanging the benchmark: its request thread is not a
    daemon and may wait on its buffer; stop it from a daemon thread, bounded."""
    import threading

    stopper = threading.Thread(target=follower.stop, daemon=True)
    stopper.start()
    stopper.join(timeout)


def cloudant_db(url: str, db: str) -> Any:
    from cloudant.client import CouchDB

    client = CouchDB(None, None, url=url, admin_party=True, connect=True)
    client.r_session.headers.update(IDENTITY)
    return client[db]


def cloudant_feed(url: str, db: str, count: int, include_docs: bool) -> Callable[[], int]:
    """python-cloudant ``Feed(db, feed="continuous")`` (its default 512-byte line reads)."""
    from cloudant.feed import Feed

    database = cloudant_db(url, db)

    def run() -> int:
        feed = Feed(database, feed="continuous", include_docs=include_docs, heartbeat=5000)
        n = 0
        try:
            for row in feed:
                if row is not None and "id" in row:
                    n += 1
                    if n == count:
                        break
        finally:
            feed.stop()
            if feed._resp is not None:
                feed._resp.close()
        return n

    return run


def cloudsync_options(transport: str) -> dict[str, Any]:
    # Our server honours short websocket heartbeats (Sync Gateway would raise them to 25 s).
    return {"transport_options": {"min_heartbeat": 0}} if transport == "websocket" else {}


def cloudsync_drain(url: str, db: str, count: int, include_docs: bool, transport: str) -> Callable[[], int]:
    """``db.subscribe(transport, since=0)`` iterated until ``count`` changes arrived."""
    import cloudsync

    database = cloudsync.Client(url).database(db)

    def run() -> int:
        n = 0
        with database.subscribe(transport, since=0, include_docs=include_docs, **cloudsync_options(transport)) as sub:
            for _ in sub:
                n += 1
                if n == count:
                    break
        return n

    return run
