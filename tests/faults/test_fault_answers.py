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
        lane.proxy.respond(status, headers=headers, body=body, count=ANSWERED)
        assert lane.proxy.close_all() >= 1
        assert lane.proxy.wait_for(lambda: lane.proxy.faults_injected["respond"] >= ANSWERED, timeout=10)
        lane.after_fault(when)
        counted = lane.sub.stats.errors - errors
    finally:
        result = lane.finish()
    return counted, result


@pytest.mark.parametrize("answer", sorted(ANSWERS))
@pytest.mark.parametrize("transport", scenario.TRANSPORTS["embedded"])
def test_unexpected_answer_is_a_failed_connection(embedded_url: str, transport: str, answer: str) -> None:
    """The close and each of the three canned answers count as a failed connection (so the
    subscription backs off), and every final revision is still delivered."""
    counted, result = _run(embedded_url, transport, answer)
    assert result.error is None and not result.lost, result.summary()
    assert counted >= 1 + ANSWERED, f"{counted} failures counted for a close and {ANSWERED} answers; " + \
        result.summary()
