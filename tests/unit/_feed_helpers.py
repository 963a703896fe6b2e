"""What the transport and subscription unit tests share: a database stand-in bound to a
fake URL, another that only answers ``info()``, rows, lines, the query string of a
recorded call, changes, scripted connections, and taking n changes from a subscription."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from cloudsync._http import HTTP
from cloudsync._retry import RetryPolicy
from cloudsync.database import Database
from cloudsync.models import Change
from cloudsync.transports import MockTransport

URL = "http://couch.test/db/_changes"


def FakeDB(base: str = "http://couch.test") -> Database:
    """Database "db" on `base`, never retrying."""
    return Database(HTTP(base, retry=RetryPolicy.never()), "db")


class InfoDB:
    """A database stand-in for subscriptions: only ``info()`` (for ``since="now"``), and
    no HTTP feed."""

    path = "/db"
    name = "db"

    def __init__(self, update_seq=0) -> None:
        self.update_seq = update_seq
        self.info_calls = 0

    def info(self):
        self.info_calls += 1
        return {"update_seq": self.update_seq}

    def changes_endpoint(self):
        return None


def script(*connections) -> MockTransport:
    """A MockTransport whose n-th connection yields connections[n] (then waits until closed)."""
    state = {"n": 0}

    def handler(request):
        n = state["n"]
        state["n"] += 1
        if n < len(connections):
            yield from connections[n]
        else:
            transport.closed.wait(5)

    transport = MockTransport(handler)
    return transport


def bound(transport, base: str = "http://couch.test", auth=None):
    """`transport` attached to database "db" on `base`."""
    http = HTTP(base, auth=auth, retry=RetryPolicy.never())
    transport.attach(Database(http, "db").changes_endpoint())
    return transport


def row(seq, doc_id, rev="1-a", **extra) -> dict:
    return {"seq": seq, "id": doc_id, "changes": [{"rev": rev}], **extra}


def line(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def query(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


def c(seq, doc_id=None, rev="1-x"):
    return Change(seq, doc_id or f"d{seq}", rev)


def take(sub, n):
    out = []
    for change in sub:
        out.append(change)
        if len(out) == n:
            break
    return out
