"""In-process checks of the input limits, the Host/Origin gate and the login throttle
(the cases a real server on 127.0.0.1 cannot show: other bind addresses, the stdlib JSON
fallback, the throttle's clock)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloudsync.server import auth, limits
from cloudsync.server.app import ServerConfig, _Gate, _host_name
from cloudsync.server.auth import Auth, LoginThrottle
from cloudsync.server.errors import CouchError


def _stdlib_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "loads", json.loads)
    monkeypatch.setattr(limits, "JSONDecodeError", (ValueError,))
    monkeypatch.setattr(limits._json, "HAS_ORJSON", False)


def test_stdlib_parser_deep_nesting_is_400(monkeypatch):
    """Without orjson, JSON nested 100,000 deep is a 400 (the parser's RecursionError is
    caught), not a crash."""
    _stdlib_json(monkeypatch)
    with pytest.raises(CouchError) as info:
        limits.parse_json(b"[" * 100_000 + b"]" * 100_000, 64)
    assert info.value.status == 400 and "nesting" in info.value.reason


def test_stdlib_parser_lone_surrogate_is_400(monkeypatch):
    r"""Without orjson (whose parser refuses them itself), a lone ``\ud800`` is a 400."""
    _stdlib_json(monkeypatch)
    with pytest.raises(CouchError) as info:
        limits.parse_json(b'{"keys": ["\\ud800"]}', 64)
    assert info.value.status == 400 and "surrogate" in info.value.reason


def test_stdlib_parser_accepts_surrogate_pairs(monkeypatch):
    r"""Without orjson, escaped non-ASCII characters and surrogate pairs parse as the characters they are."""
    _stdlib_json(monkeypatch)
    assert limits.parse_json(b'{"k": "\\u00e9\\ud83d\\ude00"}', 64) == {"k": "\u00e9\U0001F600"}


@pytest.mark.parametrize("value", ["²", "١٢", "-1", "1.5", "", " 1", "9223372036854775808", "1" * 40, True, -1,
                                   2 ** 63])
def test_parse_int_refuses(value: Any):
    """Unicode digits, signs, blanks and integers past 2^63 - 1 are 400."""
    with pytest.raises(CouchError) as info:
        limits.parse_int(value, "limit")
    assert info.value.status == 400


@pytest.mark.parametrize(("value", "number"), [("9223372036854775807", 2 ** 63 - 1), (0, 0), ("42", 42)])
def test_parse_int_accepts(value: Any, number: int):
    """ASCII digits and JSON integers up to 2^63 - 1."""
    assert limits.parse_int(value, "limit") == number


@pytest.mark.parametrize(("host", "name"), [("LocalHost:5984", "localhost"), ("[::1]:80", "::1"),
                                            ("example.com.", "example.com"), ("::1", "::1")])
def test_host_name(host, name):
    """The name in a Host header, without port, brackets or trailing dot, lowercased."""
    assert _host_name(host) == name


def _wildcard_gate() -> _Gate:
    return _Gate(ServerConfig(host="0.0.0.0", insecure_no_auth=True, allow_hosts=["box.lan"]), Auth({}))


@pytest.mark.parametrize("host", ["192.168.1.20:5984", "[fe80::1]:5984", "box.lan", "localhost"])
def test_wildcard_bind_accepts_ip_literals_and_allowed_names(host):
    """Bound to 0.0.0.0 (with --insecure-no-auth), any IP literal Host is answered (DNS
    rebinding needs a name), names when loopback or allowed."""
    assert _wildcard_gate().host_allowed(host)


def test_wildcard_bind_refuses_other_names():
    """Bound to 0.0.0.0, a name neither loopback nor allowed is refused."""
    assert not _wildcard_gate().host_allowed("evil.example")


def test_loopback_bind_refuses_other_ip_literals():
    """Bound to 127.0.0.1, a non-loopback IP literal Host is refused."""
    assert not _Gate(ServerConfig(), Auth({})).host_allowed("192.168.1.20")


def test_any_host_allowed_with_star():
    """``--allow-host *`` allows every Host."""
    assert _Gate(ServerConfig(allow_hosts=["*"]), Auth({})).host_allowed("anything.example")


def _throttled(monkeypatch: pytest.MonkeyPatch) -> tuple[LoginThrottle, list[float]]:
    """A throttle of 3 failures per minute on a fake clock, with address "a" at its limit."""
    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    throttle = LoginThrottle(3)
    for _ in range(3):
        throttle.check("a")
        throttle.failed("a")
    return throttle, now


def test_throttle_refuses_after_too_many_failures(monkeypatch):
    """Past its failures per minute, an address is refused with 429 and a 60 s retry delay."""
    throttle, _ = _throttled(monkeypatch)
    with pytest.raises(CouchError) as info:
        throttle.check("a")
    assert info.value.status == 429 and throttle.retry_after("a") == 60


def test_throttle_is_per_address(monkeypatch):
    """Another address is not affected by one address's failures."""
    throttle, _ = _throttled(monkeypatch)
    throttle.check("b")


def test_throttle_forgets_failures_after_a_minute(monkeypatch):
    """Failures older than a minute are forgotten."""
    throttle, now = _throttled(monkeypatch)
    now[0] += 61
    throttle.check("a")


def test_throttle_success_clears_the_address(monkeypatch):
    """A successful login clears the address's failures."""
    throttle, now = _throttled(monkeypatch)
    now[0] += 61
    throttle.failed("a")
    throttle.succeeded("a")
    assert throttle.retry_after("a") == 0


def test_throttle_remembers_a_bounded_number_of_addresses():
    """At most MAX_ADDRESSES addresses are remembered (the oldest forgotten first)."""
    throttle = LoginThrottle(1)
    throttle.MAX_ADDRESSES = 10
    for i in range(25):
        throttle.failed(f"10.0.0.{i}")
    assert len(throttle._failures) == 10
