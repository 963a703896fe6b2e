"""The fault scenario shared by the fault suite (``tests/faults``) and the soak (``bench.soak``).

A *lane* is one subscription (one transport, one server, one fault kind) followed
through its own :class:`~tests.faults.proxy.FaultProxy`, on a database of its own, while
a writer thread creates, updates, deletes and branches (``new_edits=false``) its
documents directly on the server. The lane injects faults of its kind at random moments
(seeded), waiting after each one until a change written after the fault has been
delivered. At the end it heals the proxy, stops the writer, reads every document's final
(winning) revision from the server, waits (with a deadline) until the subscription has
delivered each of them, and closes the subscription, timing ``close()``.

Server kills are shared: one *kill group* runs a lane per transport on a server of its
own and kills (-9) and restarts that server (same port, same data dir) under all of
them at once; each kill is one fault for each lane.

Seqs are never compared: final revisions come from the server's own feed by document.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import cloudsync
from cloudsync.errors import CloudSyncError, Conflict, NotFound
from cloudsync.subscription import ReconnectPolicy

from .proxy import FaultProxy

log = logging.getLogger("tests.faults")

TRANSPORTS = {"embedded": ("longpoll", "continuous", "sse", "websocket"), "pouchdb": ("longpoll", "continuous")}

RESET, CLOSE, BLACKHOLE, STALL, DRIP = "reset", "close", "blackhole", "stall", "drip"
TRUNCATE_ROW, TRUNCATE_CHUNK, TRUNCATE_FRAME = "truncate_row", "truncate_chunk", "truncate_frame"
HTTP_503, HTTP_429, KILL = "http_503", "http_429", "kill"
# A silent half-open connection under the WebSocket transport's default settings (Sync
# Gateway's 25 s heartbeat floor, pings): the window is the transport's own, not 1 s.
BLACKHOLE_DEFAULT = "blackhole_default"
KINDS = (RESET, CLOSE, BLACKHOLE, STALL, DRIP, TRUNCATE_ROW, TRUNCATE_CHUNK, TRUNCATE_FRAME, HTTP_503, HTTP_429,
         KILL, BLACKHOLE_DEFAULT)
BLACKHOLES = (BLACKHOLE, BLACKHOLE_DEFAULT)

#: Silence after which the subscription gives a connection up (seconds), and the heartbeat
#: asked of the server: short, so that silent half-open connections are cheap to inject.
STALL_TIMEOUT = 1.0
HEARTBEAT = 0.25
RECONNECT = ReconnectPolicy(backoff=0.01, max_backoff=0.2)

#: Faults per lane in the bounded (CI) run. Per transport they add up to 208 (210 for the
#: WebSocket); pouchdb-server has no kill lane (its data is in memory) and more resets.
CI_COUNTS = {RESET: 30, CLOSE: 30, TRUNCATE_ROW: 30, TRUNCATE_CHUNK: 30, TRUNCATE_FRAME: 30, HTTP_503: 24,
             HTTP_429: 24, DRIP: 12, STALL: 12, BLACKHOLE: 8, KILL: 8, BLACKHOLE_DEFAULT: 2}
POUCHDB_EXTRA = {RESET: 8}

# Cut points. Inside a row: a few bytes into its "changes" member. Inside a chunk-size
# line: after the CRLF that ends a chunk, one or two bytes into "<hex>\r\n". Inside a
# server WebSocket text frame: after its first, second or third byte (ASCII JSON never
# contains 0x81, so it only starts frames).
ROW_PATTERN = rb'"changes"'
CHUNK_PATTERN = rb"\r\n[0-9a-fA-F]{1,8}\r\n"
FRAME_PATTERN = rb"\x81[\x00-\x7f]"


def kinds_for(server: str, transport: str) -> list[str]:
    """The fault kinds a (server, transport) goes through."""
    kinds = [RESET, CLOSE, BLACKHOLE, STALL, DRIP, TRUNCATE_ROW]
    kinds.append(TRUNCATE_FRAME if transport == "websocket" else TRUNCATE_CHUNK)
    kinds += [HTTP_503, HTTP_429]
    if server == "embedded":
        kinds.append(KILL)  # pouchdb-server runs in memory: a restart loses the database
    if transport == "websocket":
        kinds.append(BLACKHOLE_DEFAULT)
    return kinds


@dataclasses.dataclass(frozen=True)
class LaneSpec:
    server: str
    transport: str
    kind: str
    faults: int  # how many to inject
    seed: int

    @property
    def name(self) -> str:
        return f"{self.server}-{self.transport}-{self.kind}"


def plan(seed: int, scale: float = 1.0, servers: Sequence[str] = ("embedded", "pouchdb"),
         only: Iterable[str] | None = None) -> list[LaneSpec]:
    """Every lane of a campaign: CI counts times ``scale`` (rounded up). ``only``: lane
    names to keep."""
    wanted = set(only) if only is not None else None
    lanes = []
    for server in servers:
        for transport in TRANSPORTS[server]:
            for kind in kinds_for(server, transport):
                count = CI_COUNTS[kind] + (POUCHDB_EXTRA.get(kind, 0) if server == "pouchdb" else 0)
                name = f"{server}-{transport}-{kind}"
                if wanted is None or name in wanted:
                    lanes.append(LaneSpec(server, transport, kind, math.ceil(count * scale),
                                          zlib.crc32(f"{seed}:{name}".encode())))
    return lanes


def all_lane_names(servers: Sequence[str] = ("embedded", "pouchdb")) -> list[str]:
    return [spec.name for spec in plan(0, servers=servers)]


@dataclasses.dataclass
class LaneResult:
    spec: LaneSpec
    faults: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    attempts: int = 0  # injections tried (some hit no live connection and do not count)
    missed: int = 0  # blackholes that hit only idle connections (counted, not timed)
    writes: int = 0
    documents: int = 0
    delivered: int = 0
    lost: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    duplicates: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    after_close: int = 0  # changes handed out after close() returned
    close_seconds: float = math.nan
    consumer_stopped: bool = True
    notice_seconds: list[float] = dataclasses.field(default_factory=list)  # blackhole -> failure noticed
    resume_seconds: list[float] = dataclasses.field(default_factory=list)  # blackhole -> a newer change delivered
    recovery_seconds: list[float] = dataclasses.field(default_factory=list)  # server back -> change delivered
    stuck: list[str] = dataclasses.field(default_factory=list)  # faults not recovered from in time
    stall_window: float = math.nan  # the subscription's stall_timeout
    error: str | None = None  # the subscription (or the lane) failed
    seconds: float = 0.0
    stats: Any = None

    @property
    def injected(self) -> int:
        return sum(self.faults.values())

    def summary(self) -> str:
        return (f"{self.spec.name} seed={self.spec.seed}: {self.injected} faults {dict(self.faults)}, "
                f"{self.writes} writes, {self.delivered} delivered, lost={len(self.lost)}, "
                f"duplicated={len(self.duplicates)}, close={self.close_seconds:.3f}s, "
                f"after_close={self.after_close}, stuck={self.stuck[:3]}, error={self.error}, "
                f"{self.seconds:.1f}s, stats={self.stats}")


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _writer_client(url: str) -> cloudsync.Client:
    # Direct to the server, retrying through a kill -9 and restart (about a second).
    return cloudsync.Client(url, timeout=(2, 10), retry=cloudsync.RetryPolicy(
        attempts=8, backoff=0.05, max_backoff=0.5, max_time=15))


class Lane:
    """One subscription under faults; see the module docstring."""

    DOCS = 40
    WRITE_INTERVAL = 0.03

    def __init__(self, spec: LaneSpec, server_url: str, *, progress_timeout: float = 10.0,
                 final_timeout: float = 20.0) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.result = LaneResult(spec)
        self.progress_timeout = progress_timeout
        self.final_timeout = final_timeout
        self.cond = threading.Condition()
        self.delivered: list[tuple[str, str | None, float]] = []
        self.counts: collections.Counter[tuple[str, str | None]] = collections.Counter()
        self.closed_at: float | None = None
        self.written_at: dict[tuple[str, str | None], float] = {}  # (id, rev) -> when its write was answered
        self.stop_writing = threading.Event()
        self.name = f"faults-{spec.name}-{spec.seed & 0xFFFF:04x}-{time.monotonic_ns() % 100000}"
        self.direct = _writer_client(server_url)
        self.db = self.direct.create_database(self.name, exist_ok=True)
        self.proxy = FaultProxy(*_host_port(server_url))
        self.client = cloudsync.Client(self.proxy.url, timeout=(2, 10))
        try:
            self._subscribe(spec)
        except BaseException:
            self.proxy.close()
            self.client.close()
            self.direct.close()
            raise
        self.consumer = threading.Thread(target=self._consume, name=f"{self.name}-consumer", daemon=True)
        self.writer = threading.Thread(target=self._write, name=f"{self.name}-writer", daemon=True)
        self.started = time.monotonic()

    def _subscribe(self, spec: LaneSpec) -> None:
        if spec.kind == BLACKHOLE_DEFAULT:
            settings: dict[str, Any] = {}  # the transport's defaults, heartbeat and stall window included
        else:
            # Our server honours short heartbeats on websocket (Sync Gateway raises them to 25 s).
            options = {"min_heartbeat": 0} if spec.transport == "websocket" else {}
            settings = {"heartbeat": HEARTBEAT, "stall_timeout": STALL_TIMEOUT, "transport_options": options}
        self.sub = self.client.database(self.name).subscribe(
            spec.transport, since=0, reconnect=RECONNECT, on_state_change=self._state_changed, **settings)
        self.result.stall_window = self.sub.stall_timeout

    # -- threads ---------------------------------------------------------------------------------
    def start(self) -> None:
        # A backlog before the subscription starts, so since=0 has something to catch up on.
        self.direct.database(self.name).bulk([{"_id": f"d{i:03d}", "v": 0} for i in range(0, self.DOCS, 2)]).run()
        self.consumer.start()
        self.writer.start()

    def _state_changed(self, old: Any, new: Any) -> None:
        with self.cond:
            self.cond.notify_all()

    def _consume(self) -> None:
        try:
            changes = iter(self.sub)
            while True:
                asked = time.monotonic()  # a next() called after close() returned must not hand out anything
                change = next(changes, None)
                if change is None:
                    return
                now = time.monotonic()
                with self.cond:
                    if self.closed_at is not None and asked > self.closed_at:
                        self.result.after_close += 1
                    self.delivered.append((change.id, change.rev, now))
                    self.counts[(change.id, change.rev)] += 1
                    self.cond.notify_all()
        except BaseException as exc:  # a terminal error: the lane reports it
            self.result.error = f"subscription raised {exc!r}"
            with self.cond:
                self.cond.notify_all()

    def _write(self) -> None:
        rng = random.Random(self.spec.seed ^ 0x5EED)
        db = self.db
        ids = [f"d{i:03d}" for i in range(self.DOCS)]
        revs: dict[str, str | None] = {i: None for i in ids}
        for doc_id in ids[::2]:
            with contextlib.suppress(CloudSyncError):
                revs[doc_id] = db.get(doc_id)["_rev"]
        while not self.stop_writing.wait(self.WRITE_INTERVAL):
            doc_id = rng.choice(ids)
            rev = revs[doc_id]
            roll = rng.random()
            try:
                if rev is None:
                    revs[doc_id] = new = db.create({"_id": doc_id, "v": rng.random()})["_rev"]
                    self.written_at[(doc_id, new)] = time.monotonic()
                elif roll < 0.80:
                    revs[doc_id] = new = db.update({"_id": doc_id, "_rev": rev, "v": rng.random()})["_rev"]
                    self.written_at[(doc_id, new)] = time.monotonic()
                elif roll < 0.95:
                    tombstone = db.delete(doc_id, rev=rev)
                    self.written_at[(doc_id, tombstone)] = time.monotonic()
                    revs[doc_id] = None
                else:
                    # A conflict branch: a leaf of its own, as replication would bring it.
                    # It may win (then it is the final rev) or lose (then the feed shows the
                    # old winner again, which the subscription must not hand out twice).
                    generation = int(rev.split("-", 1)[0]) + rng.randint(0, 1)
                    leaf = f"{generation}-{rng.getrandbits(128):032x}"
                    db.bulk([{"_id": doc_id, "_rev": leaf, "v": "branch"}], new_edits=False).run()
                    revs[doc_id] = db.get(doc_id)["_rev"]
                self.result.writes += 1
            except (Conflict, NotFound):
                revs[doc_id] = self._current(doc_id)
            except CloudSyncError as exc:  # the server is being killed: find out later
                log.debug("%s: write failed: %r", self.name, exc)
                revs[doc_id] = self._current(doc_id)

    def _current(self, doc_id: str) -> str | None:
        try:
            return self.db.get(doc_id)["_rev"]
        except CloudSyncError:
            return None

    # -- waiting -----------------------------------------------------------------------------------
    def wait_progress(self, since: float, timeout: float) -> bool:
        """Wait until a change arrives after ``since`` (monotonic); False on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (self.delivered and self.delivered[-1][2] > since):
                left = deadline - time.monotonic()
                if left <= 0 or self.result.error is not None:
                    return False
                self.cond.wait(min(left, 0.25))
            return True

    def wait_delivered(self, pair: tuple[str, str], timeout: float) -> float | None:
        """Wait until ``(id, rev)`` is delivered; its delivery time, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while pair not in self.counts:
                left = deadline - time.monotonic()
                if left <= 0 or self.result.error is not None:
                    return None
                self.cond.wait(min(left, 0.25))
            for doc_id, rev, at in reversed(self.delivered):
                if (doc_id, rev) == pair:
                    return at
        return None

    def _failures(self) -> int:
        stats = self.sub.stats
        return stats.errors + stats.stalls

    def _wait_failure_noticed(self, before: int, since: float, timeout: float) -> bool | None:
        """Wait until the subscription counts a failure (True); False if a change written
        after ``since`` arrives first (the feed's connection was not the one hit); None on
        timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._failures() <= before:
                if self._fresh_since(since):
                    return self._failures() > before
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.05))
        return True

    def _time_resume(self, since: float, timeout: float) -> None:
        """Record when a change written after ``since`` is delivered: how long a dead
        connection held the feed up."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self._fresh_since(since):
                left = deadline - time.monotonic()
                if left <= 0 or self.result.error is not None:
                    self.result.resume_seconds.append(math.inf)
                    return
                self.cond.wait(min(left, 0.05))
        self.result.resume_seconds.append(time.monotonic() - since)

    def _fresh_since(self, since: float) -> bool:
        """Whether a change whose write was answered after ``since`` has been delivered."""
        written = self.written_at
        for doc_id, rev, _ in reversed(self.delivered[-20:]):
            at = written.get((doc_id, rev))
            if at is not None and at > since:
                return True
        return False

    def pause(self, seconds: float) -> None:
        """A fault's own duration (a stall, a drip): a bounded wait, not waiting for an event."""
        self.stop_writing.wait(seconds)

    # -- faults ------------------------------------------------------------------------------------
    def inject(self) -> int:
        """Inject one fault of the lane's kind at a random moment; how many took effect."""
        proxy, rng, kind = self.proxy, self.rng, self.spec.kind
        before = collections.Counter(proxy.faults_injected)
        self.pause(rng.uniform(0, 0.05))
        self.result.attempts += 1
        if kind == RESET:
            proxy.reset_all()
        elif kind == CLOSE:
            proxy.close_all()
        elif kind in BLACKHOLES:
            failures = self._failures()
            started = time.monotonic()
            if proxy.blackhole():
                bound = 2 * self.sub.stall_timeout + 30
                # A write answered well after every live connection went silent cannot
                # have reached the subscription through one of them.
                noticed = self._wait_failure_noticed(failures, time.monotonic() + 0.1, bound)
                if noticed is None:
                    self.result.notice_seconds.append(math.inf)
                    self.result.stuck.append(f"blackhole #{self.result.injected + 1} not noticed in {bound:.0f}s")
                elif noticed:
                    self.result.notice_seconds.append(time.monotonic() - started)
                    self._time_resume(started, bound)
                else:
                    # Only idle connections went silent (the feed's own was still being
                    # accepted): a fault the next request on them meets, but not one whose
                    # noticing can be timed now.
                    self.result.missed += 1
        elif kind == STALL:
            if proxy.live_connections:
                proxy.stall(rng.uniform(0.1, 2 * STALL_TIMEOUT))
        elif kind == DRIP:
            if proxy.live_connections:
                proxy.drip(rng.choice((30, 200, 1000, 5000)))
                self.pause(rng.uniform(0.2, 0.6))
                proxy.drip(None)
        elif kind in (TRUNCATE_ROW, TRUNCATE_CHUNK, TRUNCATE_FRAME):
            pattern, offset = {
                TRUNCATE_ROW: (ROW_PATTERN, rng.randint(1, 14)),
                TRUNCATE_CHUNK: (CHUNK_PATTERN, rng.randint(3, 4)),
                TRUNCATE_FRAME: (FRAME_PATTERN, rng.randint(1, 3)),
            }[kind]
            # Live connections and the next one: a live connection may be an idle one
            # (the continuous transport's catch-up request) while the feed's own is still
            # being accepted. What is still armed after the first cut is disarmed.
            proxy.truncate_when(re.compile(pattern), offset=offset, reset=rng.random() < 0.5, count=1, live=True)
            proxy.wait_for(lambda: proxy.faults_injected["truncate"] > before["truncate"], timeout=5)
            proxy.disarm(live=True)
        elif kind in (HTTP_503, HTTP_429):
            status = 503 if kind == HTTP_503 else 429
            headers = {"Content-Type": "application/json"}
            hint = rng.choice((None, "0", "1"))
            if hint is not None:
                headers["Retry-After"] = hint
            body = b'{"error":"service_unavailable","reason":"injected"}' if status == 503 else \
                b'{"error":"too_many_requests","reason":"injected"}'
            count = rng.randint(1, 3)
            proxy.respond(status, headers=headers, body=body, count=count)
            proxy.close_all()  # a streaming feed would not ask again otherwise
            # Counted by the connection's thread after the accept took the rule: wait for that.
            proxy.wait_for(lambda: proxy.faults_injected["respond"] >= before["respond"] + count, timeout=5)
            proxy.disarm()
        else:
            raise ValueError(f"no such fault kind for a lane: {kind}")
        return self._count(before)

    def _count(self, before: collections.Counter[str]) -> int:
        after = collections.Counter(self.proxy.faults_injected)
        after.subtract(before)
        got = 0
        for proxy_kind, n in after.items():
            if n <= 0 or proxy_kind == "upstream_failures":
                continue
            label = {"truncate": self.spec.kind, "respond": self.spec.kind, "blackhole": self.spec.kind
                     if self.spec.kind in BLACKHOLES else "blackhole"}.get(proxy_kind, proxy_kind)
            self.result.faults[label] += n
            got += n
        return got

    def after_fault(self, when: float) -> None:
        """Wait until the subscription delivers a change written after the fault."""
        timeout = self.progress_timeout + (2 * self.sub.stall_timeout if self.spec.kind in (STALL, *BLACKHOLES) else 0)
        if not self.wait_progress(when, timeout) and self.result.error is None:
            self.result.stuck.append(f"no change delivered {timeout:.0f}s after {self.spec.kind} "
                                     f"#{self.result.injected}")

    # -- the end -----------------------------------------------------------------------------------
    def finish(self) -> LaneResult:
        result = self.result
        try:
            self.proxy.heal()
            self.proxy.disarm()
            self.stop_writing.set()
            self.writer.join(30)
            final = self.final_revisions()
            result.documents = len(final)
            deadline = time.monotonic() + self.final_timeout
            with self.cond:
                while True:
                    missing = [pair for pair in final if pair not in self.counts]
                    if not missing or time.monotonic() >= deadline or result.error is not None:
                        break
                    self.cond.wait(min(0.25, max(0.0, deadline - time.monotonic())))
            result.lost = missing
        finally:
            started = time.monotonic()
            self.sub.close()
            with self.cond:
                self.closed_at = time.monotonic()
            result.close_seconds = self.closed_at - started
            self.consumer.join(2)
            result.consumer_stopped = not self.consumer.is_alive()
            with self.cond:
                result.delivered = len(self.delivered)
                result.duplicates = sorted((pair for pair, n in self.counts.items() if n > 1), key=str)  # type: ignore[misc]
            result.stats = self.sub.stats
            result.seconds = time.monotonic() - self.started
            self.proxy.close()
            self.client.close()
            with contextlib.suppress(CloudSyncError):
                self.direct.delete_database(self.name, missing_ok=True)
            self.direct.close()
        return result

    def final_revisions(self) -> list[tuple[str, str]]:
        """Each document's winning revision, from the server's own (normal) feed."""
        for attempt in range(20):
            try:
                answer = self.db._http.request("GET", self.db.path + "/_changes", params={"since": "0"})
                return [(row["id"], row["changes"][0]["rev"]) for row in answer["results"]]
            except CloudSyncError:
                if attempt == 19:
                    raise
                self.stop_writing.wait(0.25)  # stop_writing is set: this is a plain bounded pause
        raise AssertionError("unreachable")


def run_lane(spec: LaneSpec, server_url: str, *, budget: float, **options: Any) -> LaneResult:
    """Run one lane: ``spec.faults`` faults (or as many as ``budget`` seconds allow)."""
    lane = Lane(spec, server_url, **options)
    try:
        lane.start()
        if not lane.wait_progress(0.0, 15):
            lane.result.stuck.append("nothing delivered before the first fault")
        deadline = time.monotonic() + budget
        tries = 0
        while lane.result.injected < spec.faults and time.monotonic() < deadline and lane.result.error is None:
            tries += 1
            if tries > spec.faults * 20:
                break
            when = time.monotonic()
            if lane.inject():
                lane.after_fault(when)
    except Exception as exc:
        lane.result.error = f"lane failed: {exc!r}"
        log.exception("lane %s failed", spec.name)
    return lane.finish()


def run_kill_group(specs: Sequence[LaneSpec], server: Any, *, budget: float, outage: tuple[float, float] = (0.0, 0.3),
                   **options: Any) -> list[LaneResult]:
    """Lanes (one per transport) on their own ``server`` (a
    :class:`cloudsync.server.testing.ServerProcess`), which is killed (-9) and restarted
    on the same port and data dir ``spec.faults`` times under all of them."""
    if not specs:
        return []
    rng = random.Random(specs[0].seed)
    lanes = [Lane(spec, server.url, **options) for spec in specs]
    try:
        for lane in lanes:
            lane.start()
        for lane in lanes:
            if not lane.wait_progress(0.0, 15):
                lane.result.stuck.append("nothing delivered before the first kill")
        deadline = time.monotonic() + budget
        for number in range(max(spec.faults for spec in specs)):
            if time.monotonic() > deadline:
                break
            lanes[0].pause(rng.uniform(0, 0.2))
            killed = time.monotonic()
            server.kill()
            lanes[0].pause(rng.uniform(*outage))
            server.start()
            up = time.monotonic()
            for lane in lanes:
                lane.result.attempts += 1
                lane.result.faults[KILL] += 1
            # The first change after the server is back: a marker written at once.
            markers = {}
            for lane in lanes:
                doc = lane.db.create({"_id": f"marker-{number:04d}", "kill": number})
                markers[lane] = (doc["_id"], doc["_rev"])
            for lane in lanes:
                at = lane.wait_delivered(markers[lane], lane.progress_timeout)
                if at is None:
                    lane.result.recovery_seconds.append(math.inf)
                    lane.result.stuck.append(f"kill #{number + 1}: marker not delivered in "
                                             f"{lane.progress_timeout:.0f}s")
                else:
                    lane.result.recovery_seconds.append(at - up)
                lane.after_fault(killed)
    except Exception as exc:
        for lane in lanes:
            lane.result.error = lane.result.error or f"kill group failed: {exc!r}"
        log.exception("kill group failed")
    return [lane.finish() for lane in lanes]


def run_campaign(lanes: Sequence[LaneSpec], urls: dict[str, str], *, kill_server: Any = None,
                 concurrency: int = 8, budget: float = 80.0,
                 on_result: Callable[[LaneResult], None] | None = None, **options: Any) -> list[LaneResult]:
    """Run ``lanes`` on the servers at ``urls`` (``{"embedded": url, "pouchdb": url}``),
    ``concurrency`` at a time, the longest first; kill lanes together on ``kill_server``.
    ``budget``: seconds each lane may spend injecting."""
    kills = [spec for spec in lanes if spec.kind == KILL]
    others = [spec for spec in lanes if spec.kind != KILL]
    slow_first = {KILL: 0, BLACKHOLE_DEFAULT: 1, STALL: 2, BLACKHOLE: 3, DRIP: 4}
    others.sort(key=lambda s: (slow_first.get(s.kind, 9), s.name))
    results: list[LaneResult] = []
    lock = threading.Lock()

    def done(got: Sequence[LaneResult]) -> None:
        with lock:
            results.extend(got)
        if on_result is not None:
            for result in got:
                on_result(result)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fault-lane") as pool:
        futures = []
        if kills:
            if kill_server is None:
                raise ValueError("kill lanes need a kill_server")
            futures.append(pool.submit(lambda: done(run_kill_group(kills, kill_server, budget=budget, **options))))
        for spec in others:
            futures.append(pool.submit(lambda spec=spec: done([run_lane(spec, urls[spec.server], budget=budget,
                                                                       **options)])))
        for future in futures:
            future.result()
    order = {spec.name: i for i, spec in enumerate(lanes)}
    return sorted(results, key=lambda r: order[r.spec.name])
