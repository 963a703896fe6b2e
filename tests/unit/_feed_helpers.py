"""What the transport and subscription unit tests share: a database stand-in bound to a
fake URL, rows, lines, the query string of a recorded call, changes, and taking n
changes from a subscription."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from cloudsync._http import HTTP
from cloudsync._retry import RetryPolicy
from cloudsync.models import Change

URL = "http://couch.test/db/_changes"


class FakeDB:
    path = "/db"
    name = "db"

    def __init__(self, base: str = "http://couch.test") -> None:
        self._http = HTTP(base, retry=RetryPolicy.never())


def bound(transport, base: str = "http://couch.test"):
    transport.bind(FakeDB(base))
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
