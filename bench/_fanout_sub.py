"""The subscriber side of the fan-out benchmark: one process holding many feed connections.

Run by ``bench.fanout`` as ``python -m bench._fanout_sub '<json config>'`` and driven over
stdin/stdout, one JSON object per line:

- on start it opens every connection (WebSocket and eventsource feeds, or ``continuous``
  for servers without those) and prints ``{"connected": n, "failed": k, "kinds": [...]}``;
- ``{"expect": "<doc id>", "timeout": s}`` arms every connection for that document and
  prints ``{"armed": true}``; the process then prints ``{"times": [...]}``, one
  ``CLOCK_MONOTONIC`` nanosecond receipt time per connection (``null`` if it did not
  arrive in time), as soon as every connection has it or the timeout passes;
- ``{"verify": [ids]}`` parses every connection's whole byte stream properly (HTTP
  headers, WebSocket frames or chunked encoding, SSE events, JSON rows) and prints how many
  connections got a well-formed row for every id;
- ``{"quit": true}`` (or EOF) closes everything and exits.

The connections are raw asyncio protocols, not a client library: ``data_received`` takes
the receipt time first and then only searches the new bytes for the armed document id,
so a thousand receipts cost this process a few milliseconds and the measurement is of
the server, not of client-side parsing. Everything received is kept and parsed properly
(``verify``) after the timed part.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import resource
import sys
import time
from typing import Any
from urllib.parse import quote, urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_monotonic_ns = time.monotonic_ns


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class Run:
    """Shared state of one armed write."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.target: bytes | None = None
        self.count = 0
        self.done: asyncio.Future[None] | None = None


class Sub(asyncio.Protocol):
    """One feed connection; keeps every byte it receives."""

    def __init__(self, kind: str, run: Run, request: bytes, since: str) -> None:
        self.kind = kind
        self.run = run
        self.request = request
        self.since = since
        self.chunks: list[bytes] = []
        self.head_len = -1
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tail = b""
        self.hit: int | None = None
        self.transport: asyncio.Transport | None = None
        self.ws_key = b""
        self.lost = False

    # -- timed path --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        now = _monotonic_ns()
        run = self.run
        target = run.target
        if target is not None and self.hit is None:
            if target in self.tail + data:
                self.hit = now
                run.count += 1
                if run.count == run.n and run.done is not None and not run.done.done():
                    run.done.set_result(None)
            self.tail = data[-len(target):]
        self.chunks.append(data)
        if not self.ready.done():
            self._check_ready()

    # -- setup -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"{self.kind} feed closed during setup: {exc}"))

    def _check_ready(self) -> None:
        data = b"".join(self.chunks)
        if self.head_len < 0:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_len = end + 4
            status = data.split(b" ", 2)[1]
            if self.kind == "websocket":
                accept = base64.b64encode(hashlib.sha1(self.ws_key + _GUID).digest())
                if status != b"101" or accept not in data[:end]:
                    self.ready.set_exception(ConnectionError(f"websocket upgrade failed: {data[:200]!r}"))
                    return
                options = json.dumps({"since": self.since, "heartbeat": 30000}).encode()
                assert self.transport is not None
                self.transport.write(ws_frame(options))
            elif status != b"200":
                self.ready.set_exception(ConnectionError(f"{self.kind} feed failed: {data[:200]!r}"))
                return
            else:
                self.ready.set_result(None)  # streamed feeds: the headers are sent at once
                return
        # websocket: ready once the server says it is caught up (an empty array)
        if b"\x81\x02[]" in data[self.head_len:]:
            self.ready.set_result(None)

    # -- verification (untimed) --------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """Every change row received, parsed by the rules of the feed's wire format."""
        data = b"".join(self.chunks)[self.head_len:]
        if self.kind == "websocket":
            return list(_ws_rows(data))
        body = _dechunk(data)
        if self.kind == "eventsource":
            return list(_sse_rows(body))
        return [json.loads(line) for line in body.split(b"\n") if line.strip()]


def _ws_rows(data: bytes):
    i = 0
    while i + 2 <= len(data):
        b0, b1 = data[i], data[i + 1]
        n = b1 & 0x7F
        i += 2
        if n == 126:
            n = int.from_bytes(data[i:i + 2], "big")
            i += 2
        elif n == 127:
            n = int.from_bytes(data[i:i + 8], "big")
            i += 8
        if b1 & 0x80:
            raise ValueError("server frames must not be masked")
        payload = data[i:i + n]
        if len(payload) < n:
            return  # a frame still arriving
        i += n
        if b0 & 0x0F != 0x1 or not b0 & 0x80:
            continue  # control frames (close, ping) carry no rows
        value = json.loads(payload)
        if value == "":
            continue  # heartbeat
        if not isinstance(value, list):
            raise ValueError(f"websocket message is not an array: {payload[:100]!r}")
        yield from value


def _dechunk(data: bytes) -> bytes:
    out = []
    i = 0
    while True:
        end = data.find(b"\r\n", i)
        if end < 0:
            break
        size = int(data[i:end].split(b";")[0], 16)
        if size == 0:
            break
        if end + 2 + size > len(data):
            break
        out.append(data[end + 2:end + 2 + size])
        i = end + 2 + size + 2
    return b"".join(out)


def _sse_rows(body: bytes):
    for event in body.split(b"\n\n"):
        data = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
        ids = [line[3:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"id:")]
        if not data or not b"".join(data).strip():
            continue  # heartbeat
        row = json.loads(b"\n".join(data))
        # CouchDB writes the id as the seq JSON-encoded (a quoted string for its opaque seqs).
        if ids and json.loads(ids[-1]) != row["seq"]:
            raise ValueError(f"SSE id {ids[-1]!r} is not the row's seq {row['seq']!r}")
        yield row


async def open_sub(kind: str, run: Run, url: str, db: str, since: str, gate: asyncio.Semaphore) -> Sub:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = f"/{quote(db, safe='')}/_changes"
    hostport = f"{host}:{port}".encode()
    if kind == "websocket":
        key = base64.b64encode(os.urandom(16))
        request = (b"GET " + path.encode() + b"?feed=websocket HTTP/1.1\r\nHost: " + hostport
                   + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key
                   + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    else:
        key = b""
        query = f"?feed={kind}&since={quote(since)}&heartbeat=30000"
        request = (b"GET " + path.encode() + query.encode() + b" HTTP/1.1\r\nHost: " + hostport
                   + b"\r\nAccept: " + (b"text/event-stream" if kind == "eventsource" else b"application/json")
                   + b"\r\nAccept-Encoding: identity\r\n\r\n")
    loop = asyncio.get_running_loop()
    async with gate:
        sub = Sub(kind, run, request, since)
        sub.ws_key = key
        await loop.create_connection(lambda: sub, host, port)
        await asyncio.wait_for(sub.ready, 30)
    return sub


async def main(config: dict[str, Any]) -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    kinds: list[str] = config["kinds"]
    run = Run(len(kinds))
    gate = asyncio.Semaphore(100)
    results = await asyncio.gather(
        *(open_sub(k, run, config["url"], config["db"], config["since"], gate) for k in kinds),
        return_exceptions=True,
    )
    subs = [r for r in results if isinstance(r, Sub)]
    errors = [repr(r) for r in results if not isinstance(r, Sub)]
    run.n = len(subs)
    out = sys.stdout

    def say(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    say({"connected": len(subs), "failed": len(errors), "errors": errors[:3], "kinds": [s.kind for s in subs]})
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        if "expect" in cmd:
            target = b'"id":' + json.dumps(cmd["expect"]).encode()
            for s in subs:
                s.hit, s.tail = None, b""
            run.target, run.count = target, 0
            run.done = loop.create_future()
            say({"armed": True})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.done), cmd.get("timeout", 10))
            run.target = None
            say({"times": [s.hit for s in subs], "lost": sum(s.lost for s in subs)})
        elif "verify" in cmd:
            wanted = set(cmd["verify"])
            complete, problems = 0, []
            for s in subs:
                try:
                    got = {row["id"] for row in s.rows() if "id" in row and row.get("changes")}
                except (ValueError, KeyError) as exc:
                    problems.append(f"{s.kind}: {exc}")
                    continue
                if wanted <= got:
                    complete += 1
                elif len(problems) < 3:
                    problems.append(f"{s.kind}: missing {sorted(wanted - got)[:3]}")
            say({"complete": complete, "of": len(subs), "problems": problems})
        elif "quit" in cmd:
            break
    for s in subs:
        if s.transport is not None:
            s.transport.abort()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
