"""Answers that are not a feed (a redirect, a 204, an HTML page, a 502) from something in
front of the server: each is a failed connection (backed off), never a clean end."""

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
}
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
        lane.after_fault(when)
        counted = lane.sub.stats.errors - errors
    finally:
        result = lane.finish()
    return counted, result


# Known bug (issue #10), strict so that a fix shows up as XPASS. The HTTP feeds take these
# answers for a retryable InvalidResponse (docs/errors.md, "A change feed must be a feed");
# WebSocketTransport turns a 200 or 204 handshake answer into error_from_parts(status), a
# plain non-retryable HTTPError, and the subscription gives up.
TERMINAL = ("known bug: a {answer} answer to the WebSocket handshake raises a non-retryable HTTPError "
            "(error_from_parts in WebSocketTransport) and the subscription gives up, where the HTTP feeds "
            "raise a retryable InvalidResponse")
KNOWN = {("websocket", "html-200"): TERMINAL, ("websocket", "no-content-204"): TERMINAL}


def _cases() -> list:
    cases = []
    for transport in scenario.TRANSPORTS["embedded"]:
        for answer in sorted(ANSWERS):
            reason = KNOWN.get((transport, answer))
            marks = [pytest.mark.xfail(reason=reason.format(transport=transport, answer=answer), strict=True)] \
                if reason else []
            cases.append(pytest.param(transport, answer, marks=marks, id=f"{transport}-{answer}"))
    return cases


@pytest.mark.parametrize(("transport", "answer"), _cases())
def test_unexpected_answer_is_a_failed_connection(embedded_url: str, transport: str, answer: str) -> None:
    """Each of the three canned answers counts as a failed connection (so the subscription
    backs off), and every final revision is still delivered. (The close that makes a feed
    ask again is not counted on: a long poll's request on a kept-alive connection closed
    under it is resent at once, as HTTP clients do.)"""
    counted, result = _run(embedded_url, transport, answer)
    assert result.error is None and not result.lost, result.summary()
    assert counted >= ANSWERED, f"{counted} failures counted for {ANSWERED} answers; " + result.summary()
