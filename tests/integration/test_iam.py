"""IAMAuth end to end: a local IAM token endpoint hands out HS256 JWTs that the embedded
server (`--jwt-secret`) accepts until they expire. Exchange, reuse, refresh ahead of
expiry, renewal after a 401, failing endpoints, threads sharing one IAMAuth, and
subscriptions on every transport that outlive several token lifetimes."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

import cloudsync
from tests._servers.iam import GRANT_TYPE, IAMEndpoint
from tests.conftest import ADMIN, JWT_SECRET
from tests.faults import scenario
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEY = "iam-test-key-7f3a9c"
USERS = {KEY: ("svc", ["_admin"]), "staff-key": ("sam", ["staff"])}
NO_RETRY = cloudsync.RetryPolicy.never()


@pytest.fixture
def iam() -> Iterator[IAMEndpoint]:
    """A token endpoint of this test's own (60-second tokens unless the test says)."""
    with IAMEndpoint(JWT_SECRET, USERS) as endpoint:
        yield endpoint


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_refused(url: str, token: str) -> None:
    """Wait (up to 15 s) until the server refuses `token`: it has expired."""
    deadline = time.monotonic() + 15
    headers = {"Authorization": f"Bearer {token}"}
    while requests.get(url + "/_up", headers=headers, timeout=5).status_code != 401:
        assert time.monotonic() < deadline, "the token never expired"


def _client(url: str, auth: cloudsync.Auth, **kwargs) -> cloudsync.Client:
    return cloudsync.Client(url, auth=auth, timeout=(5, 30), **kwargs)


def test_first_request_exchanges_the_key(jwt_server, iam):
    """The first request exchanges the key with a form POST as IAM wants it, and is
    authenticated as the token's user."""
    with _client(jwt_server.url, cloudsync.IAMAuth(KEY, token_url=iam.url)) as client:
        assert isinstance(client.databases(), list)  # `_all_dbs`: the token's `_admin` role applies
    assert iam.exchanges == 1
    assert iam.last_form == {"grant_type": GRANT_TYPE, "apikey": KEY}
    assert iam.last_headers["Accept"] == "application/json"
    assert iam.last_headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_token_is_reused_within_its_lifetime(jwt_server, iam):
    """Many requests within a token's lifetime make one exchange."""
    with _client(jwt_server.url, cloudsync.IAMAuth(KEY, token_url=iam.url)) as client:
        for _ in range(10):
            client.databases()
    assert iam.exchanges == 1


def test_token_is_refreshed_once_most_of_its_lifetime_has_passed(jwt_server, iam):
    """With an injected clock: no exchange before 80% of `expires_in` has passed, one
    after it, before the token expires (no 401 needed)."""
    iam.lifetime = 60
    clock = Clock()
    with _client(jwt_server.url, cloudsync.IAMAuth(KEY, token_url=iam.url, clock=clock)) as client:
        client.databases()
        clock.now += 47.9
        client.databases()
        assert iam.exchanges == 1
        clock.now += 0.2
        client.databases()
        assert iam.exchanges == 2
        assert iam.requests == 2  # no renewal after a 401 was needed


def test_expired_token_is_replaced_before_the_request(jwt_server, iam):
    """A token past its lifetime (real, 1-second tokens) is replaced before it is sent:
    the server never sees it and no request fails."""
    iam.lifetime = 1
    auth = cloudsync.IAMAuth(KEY, token_url=iam.url)
    with _client(jwt_server.url, auth, retry=NO_RETRY) as client:
        client.databases()
        wait_refused(jwt_server.url, iam.last_token)
        client.databases()
    assert iam.exchanges == 2


def test_refused_token_is_renewed_at_once(jwt_server, iam):
    """A token the server refuses (401) is replaced at once and the request resent."""
    iam.forge_next()
    with _client(jwt_server.url, cloudsync.IAMAuth(KEY, token_url=iam.url), retry=NO_RETRY) as client:
        assert isinstance(client.databases(), list)
    assert iam.requests == 2


def test_roles_from_the_token_apply(jwt_server, iam):
    """An IAM user whose token carries role `staff` reads a database whose members are
    `staff`, and is forbidden one that is admin-only."""
    with _client(jwt_server.url, cloudsync.BasicAuth(*ADMIN)) as admin:
        open_db = admin.create_database(f"iam-staff-{time.monotonic_ns()}")
        closed_db = admin.create_database(f"iam-closed-{time.monotonic_ns()}")
        security = requests.put(f"{jwt_server.url}/{open_db.name}/_security", auth=ADMIN, timeout=10,
                                json={"members": {"roles": ["staff"]}})
        assert security.status_code == 200
        try:
            with _client(jwt_server.url, cloudsync.IAMAuth("staff-key", token_url=iam.url)) as client:
                assert client.database(open_db.name).create({"by": "sam"})["_id"]
                with pytest.raises(cloudsync.Forbidden):
                    client.database(closed_db.name).info()
        finally:
            admin.delete_database(open_db.name)
            admin.delete_database(closed_db.name)


def at_once(client: cloudsync.Client, n: int) -> list[BaseException]:
    """`client.databases()` from `n` threads released together; what they raised."""
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait(10)
            client.databases()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return errors


def test_many_threads_share_one_exchange(jwt_server, iam):
    """Sixteen threads starting requests at once with one IAMAuth make one exchange."""
    with _client(jwt_server.url, cloudsync.IAMAuth(KEY, token_url=iam.url)) as client:
        assert at_once(client, 16) == []
    assert iam.exchanges == 1


def test_many_threads_refused_at_once_renew_once(jwt_server, iam):
    """When one refused token fails sixteen threads' requests at once, one of them
    exchanges the key and the others resend with its token."""
    iam.forge_next()
    with _client(jwt_server.url, cloudsync.IAMAuth(KEY, token_url=iam.url), retry=NO_RETRY) as client:
        # The first exchange makes every thread wait; all then send the forged token.
        assert at_once(client, 16) == []
    assert iam.requests == 2


@pytest.mark.parametrize(("mode", "retryable"), [
    ("400", False), ("401", False), ("echo-key", False), ("429", True), ("500", True), ("503", True),
    ("not-json", True), ("no-token", True), ("no-expiry", True),
])
def test_failing_token_endpoint_raises_a_typed_error_without_the_key(jwt_server, iam, caplog, mode, retryable):
    """Each way the token endpoint can fail raises TokenError (retryable or not as the
    failure is), and neither the key nor a token shows in its message, repr or the logs."""
    caplog.set_level(logging.DEBUG, logger="cloudsync")
    iam.mode = mode
    auth = cloudsync.IAMAuth(KEY, token_url=iam.url)
    with _client(jwt_server.url, auth, retry=NO_RETRY) as client, pytest.raises(cloudsync.TokenError) as info:
        client.databases()
    error = info.value
    assert error.retryable is retryable and error.sent is False
    for text in (str(error), repr(error), repr(auth), caplog.text):
        assert KEY not in text


def test_unreachable_token_endpoint_raises_a_retryable_typed_error(jwt_server, caplog):
    """A token endpoint refusing connections raises a retryable TokenError, not a
    NetworkError of the database (whose port is up)."""
    caplog.set_level(logging.DEBUG, logger="cloudsync")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    auth = cloudsync.IAMAuth(KEY, token_url=f"http://127.0.0.1:{port}/identity/token")
    with _client(jwt_server.url, auth, retry=NO_RETRY) as client, pytest.raises(cloudsync.TokenError) as info:
        client.databases()
    assert info.value.retryable and info.value.__cause__ is None
    assert KEY not in str(info.value) and KEY not in caplog.text


def test_silent_token_endpoint_times_out(jwt_server, iam):
    """A token endpoint that never answers raises TokenError after the IAMAuth's timeout."""
    iam.mode = "stall"
    auth = cloudsync.IAMAuth(KEY, token_url=iam.url, timeout=(1.0, 1.0))
    started = time.monotonic()
    with _client(jwt_server.url, auth, retry=NO_RETRY) as client, pytest.raises(cloudsync.TokenError):
        client.databases()
    assert time.monotonic() - started < 10


def test_transient_token_failure_is_retried_by_the_client(jwt_server, iam):
    """A 503 from the token endpoint is retried by the client's RetryPolicy (nothing was
    sent to the database), and the request succeeds."""
    iam.fail_next("503")
    retry = cloudsync.RetryPolicy(backoff=0.01, max_backoff=0.05)
    with _client(jwt_server.url, cloudsync.IAMAuth(KEY, token_url=iam.url), retry=retry) as client:
        assert isinstance(client.databases(), list)
    assert iam.requests == 2 and iam.exchanges == 1


def test_failed_early_refresh_keeps_the_valid_token(jwt_server, iam, caplog):
    """A refresh due before expiry that fails (503) keeps the still-valid token in use:
    the request succeeds, with a warning that names neither key nor token."""
    clock = Clock()
    iam.lifetime = 60
    with _client(jwt_server.url, cloudsync.IAMAuth(KEY, token_url=iam.url, clock=clock), retry=NO_RETRY) as client:
        client.databases()
        token = iam.last_token
        iam.fail_next("503")
        clock.now += 50
        client.databases()
    assert iam.requests == 2 and iam.exchanges == 1
    assert "refresh failed" in caplog.text and KEY not in caplog.text and token not in caplog.text


def test_repr_and_logs_never_show_key_or_token(jwt_server, iam, caplog):
    """At DEBUG level a session with IAMAuth logs neither the key nor the token; repr
    shows only the token URL."""
    caplog.set_level(logging.DEBUG, logger="cloudsync")
    auth = cloudsync.IAMAuth(KEY, token_url=iam.url)
    with _client(jwt_server.url, auth) as client:
        client.databases()
        shown = repr(auth) + repr(client)
    for text in (shown, caplog.text):
        assert KEY not in text and iam.last_token not in text


@pytest.mark.parametrize("transport", ["websocket", "longpoll", "continuous", "sse"])
def test_subscription_outlives_several_token_lifetimes(jwt_server, iam, transport):
    """A subscription through a proxy whose connections are reset each time the token
    they were opened with has expired (the server refuses it) reconnects with a fresh
    token, three times, and delivers every change once."""
    iam.lifetime = 2
    name = f"iam-sub-{transport}-{time.monotonic_ns()}"
    delivered: list[str] = []
    cond = threading.Condition()

    def on_change(change: cloudsync.Change) -> None:
        with cond:
            delivered.append(change.id)
            cond.notify_all()

    def wait_delivered(n: int) -> None:
        with cond:
            assert cond.wait_for(lambda: len(delivered) >= n, timeout=30), (len(delivered), n)

    admin = _client(jwt_server.url, cloudsync.BasicAuth(*ADMIN))
    writer = admin.create_database(name)
    options = {"min_heartbeat": 0} if transport == "websocket" else {}
    try:
        with FaultProxy("127.0.0.1", jwt_server.port) as proxy, \
                _client(proxy.url, cloudsync.IAMAuth(KEY, token_url=iam.url)) as client:
            sub = client.database(name).subscribe(transport, since="now", heartbeat=scenario.HEARTBEAT,
                                                  stall_timeout=scenario.STALL_TIMEOUT,
                                                  reconnect=scenario.RECONNECT, transport_options=options)
            with sub:
                sub.start(on_change)
                expected = []
                for cycle in range(4):
                    docs = [{"_id": f"c{cycle}-{i}"} for i in range(5)]
                    writer.bulk(docs).run()
                    expected += [d["_id"] for d in docs]
                    wait_delivered(len(expected))
                    if cycle == 3:
                        break
                    used = iam.last_token
                    exchanges = iam.exchanges
                    wait_refused(jwt_server.url, used)
                    proxy.reset_all()
                    # The reconnect needs a token the server accepts: a new exchange.
                    assert iam.wait_for_exchanges(exchanges + 1, timeout=15)
            assert sorted(delivered) == sorted(expected)
            assert len(delivered) == len(set(delivered))
            assert iam.exchanges >= 4
    finally:
        admin.delete_database(name, missing_ok=True)
        admin.close()


def test_subscription_with_a_refused_key_stops_with_the_token_error(jwt_server, iam):
    """A subscription whose key the endpoint refuses stops at once with the TokenError
    (retrying cannot help), instead of reconnecting forever."""
    iam.mode = "400"
    errors: list[BaseException] = []
    done = threading.Event()

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        done.set()

    with _client(jwt_server.url, cloudsync.IAMAuth(KEY, token_url=iam.url), retry=NO_RETRY) as client:
        sub = client.database("iam-never-reached").subscribe("websocket", since=0, reconnect=scenario.RECONNECT)
        with sub:
            sub.start(lambda change: None, on_error)
            assert done.wait(15)
    assert isinstance(errors[0], cloudsync.TokenError) and KEY not in str(errors[0])
