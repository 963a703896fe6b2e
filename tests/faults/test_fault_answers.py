"""Answers that are not a feed (a redirect, a 204, an HTML page, a 429, a 502, a 503) from
something in front of the server: each is a failed connection (backed off, with the real
wait, and at least a Retry-After), never a clean end nor the end of the subscription."""

from __future__ import annotations

import time

import pytest

from tests.faults import scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ANSWERS = {
    "redirect-301": (301, {"Location": "/elsewhere/_changes"}, b""),
    "no-content-204": (204, {}, b""),
    "html-200": (200, {"Content-Type": "text/html"}, b"<html><body>Welcome to the portal</body></html>"),
    "bad-gateway-502": (502, {"Content-Type": "text/html"}, b"<html><body>502 Bad Gateway</body></html>"),
    "rate-limited-429": (429, {"Content-Type": "application/json"},
                         b'{"error":"too_many_requests","reason":"You\'ve exceeded your rate limit allowance."}'),
    "unavailable-503": (503, {"Content-Type": "application/json"},
                        b'{"error":"service_unavailable","reason":"Service unavailable"}'),
}
RETRY_AFTER = 1.0
ANSWERED = 3  # connections in a row that get the answer
# Only the feed's own request is answered (not the continuous transport's catch-up request,
# which reads like a long poll): each answer then meets the same code every time.
FEED_REQUEST = {"longpoll": rb"feed=longpoll", "continuous": rb"feed=continuous", "sse": rb"feed=eventsource",
                "websocket": rb"feed=websocket"}


def _run(embedded_url: str, transport: str, answer: str) -> tuple[int, scenario.LaneResult]:
    """Follow a feed through the proxy; after a clean close, the next ANSWERED connections
    get ``answer``. Returns the failures counted meanwhile and the lane's result."""
    status, headers, body = ANSWERS[answer]
    lane = scenario.Lane(scenario.LaneSpec("embedded", transport, f"answer-{answer}", 0, 7), embedded_url)
    try:
        lane.start()
        assert lane.wait_progress(0.0, 15), "nothing delivered before the fault"
        errors = lane.sub.stats.errors
        when = time.monotonic()
        lane.proxy.respond(status, headers=headers, body=body, count=ANSWERED, match=FEED_REQUEST[transport])
        assert lane.proxy.close_all() >= 1
        # Not asserted here: a subscription that wrongly gives up asks no more (reported below).
        lane.proxy.wait_for(lambda: lane.proxy.faults_injected["respond"] >= ANSWERED or lane.result.error is not None,
                            timeout=10)
        # The last answer may still be on its way through the client: wait for it to count.
        lane.proxy.wait_for(lambda: lane.sub.stats.errors - errors >= ANSWERED, timeout=10)
        lane.after_fault(when)
        counted = lane.sub.stats.errors - errors
    finally:
        result = lane.finish()
    return counted, result


@pytest.mark.parametrize("answer", sorted(ANSWERS))
@pytest.mark.parametrize("transport", scenario.TRANSPORTS["embedded"])
def test_unexpected_answer_is_a_failed_connection(embedded_url: str, transport: str, answer: str) -> None:
    """Each of the three canned answers counts as a failed connection (so the subscription
    backs off), and every final revision is still delivered. (The close that makes a feed
    ask again is not counted on: a long poll's request on a kept-alive connection closed
    under it is resent at once, as HTTP clients do.)"""
    counted, result = _run(embedded_url, transport, answer)
    assert result.error is None and not result.lost, result.summary()
    assert counted >= ANSWERED, f"{counted} failures counted for {ANSWERED} answers; " + result.summary()


@pytest.mark.parametrize("answer", ["rate-limited-429", "unavailable-503"])
@pytest.mark.parametrize("transport", scenario.TRANSPORTS["embedded"])
def test_retry_after_is_honoured(embedded_url: str, transport: str, answer: str) -> None:
    """After a 429 or 503 carrying ``Retry-After: 1`` the feed is not asked for again
    within that second, and then the subscription goes on delivering."""
    status, headers, body = ANSWERS[answer]
    lane = scenario.Lane(scenario.LaneSpec("embedded", transport, f"retry-after-{answer}", 0, 11), embedded_url)
    try:
        lane.start()
        assert lane.wait_progress(0.0, 15), "nothing delivered before the fault"
        lane.proxy.respond(status, headers={**headers, "Retry-After": str(int(RETRY_AFTER))}, body=body, count=1,
                           match=FEED_REQUEST[transport])
        assert lane.proxy.close_all() >= 1
        assert lane.proxy.wait_for(lambda: lane.proxy.faults_injected["respond"] >= 1, timeout=10)
        answered = time.monotonic()
        connections = lane.proxy.connections
        assert lane.proxy.wait_for(lambda: lane.proxy.connections > connections, timeout=10)
        assert time.monotonic() - answered >= RETRY_AFTER - 0.05
        lane.after_fault(answered)
    finally:
        result = lane.finish()
    assert result.error is None and not result.lost and not result.stuck, result.summary()
