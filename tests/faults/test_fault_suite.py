"""Every transport through every fault kind (issue #10 item 8), bounded for CI.

One lane per (server, transport, fault kind) runs in the session's fault campaign
(``conftest.fault_campaign``; the scenario is ``tests/faults/scenario.py``): a writer
creates, updates, deletes and branches documents while a subscription follows them
through a fault proxy that injects faults of the lane's kind at random moments. These
tests check each lane's figures. Seeds: ``CLOUDSYNC_FAULT_SEED`` replays a campaign.
"""

from __future__ import annotations

import pytest

from tests.faults import scenario
from tests.faults.conftest import Campaign

# One xdist group: the tests share one worker, so the session's campaign runs once.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600), pytest.mark.xdist_group("fault-campaign")]

LANES = scenario.all_lane_names()
TARGETS = [f"{server}-{transport}" for server, transports in scenario.TRANSPORTS.items() for transport in transports]
BLACKHOLE_LANES = [name for name in LANES if name.endswith("-" + scenario.BLACKHOLE)]
DEFAULT_BLACKHOLE_LANES = [name for name in LANES if name.endswith("-" + scenario.BLACKHOLE_DEFAULT)]
KILL_LANES = [name for name in LANES if name.endswith("-" + scenario.KILL)]
CI_FAULTS_PER_TRANSPORT = 200


@pytest.mark.parametrize("lane", LANES)
def test_every_final_revision_delivered(fault_campaign: Campaign, lane: str) -> None:
    """After the faults, each document's final (winning) revision has been delivered."""
    result = fault_campaign.lane(lane)
    assert result.documents > 0, fault_campaign.why(result)
    assert not result.lost, f"{len(result.lost)} final revisions never delivered: {result.lost[:5]}" + \
        fault_campaign.why(result)


@pytest.mark.parametrize("lane", LANES)
def test_no_revision_delivered_twice(fault_campaign: Campaign, lane: str) -> None:
    """No (id, rev) is handed to the application twice, whatever the replays after reconnects."""
    result = fault_campaign.lane(lane)
    assert not result.duplicates, f"delivered twice: {result.duplicates[:5]}" + fault_campaign.why(result)


@pytest.mark.parametrize("lane", LANES)
def test_subscription_never_gives_up(fault_campaign: Campaign, lane: str) -> None:
    """Every fault is transient: the subscription never raises a terminal error."""
    result = fault_campaign.lane(lane)
    assert result.error is None, result.error + fault_campaign.why(result)


@pytest.mark.parametrize("lane", LANES)
def test_recovers_from_every_fault(fault_campaign: Campaign, lane: str) -> None:
    """After each fault, a change written afterwards is delivered within the progress deadline."""
    result = fault_campaign.lane(lane)
    assert not result.stuck, f"{len(result.stuck)} faults not recovered from: {result.stuck[:3]}" + \
        fault_campaign.why(result)


@pytest.mark.parametrize("lane", LANES)
def test_close_returns_within_a_second(fault_campaign: Campaign, lane: str) -> None:
    """sub.close() returns in under a second and the consuming loop ends."""
    result = fault_campaign.lane(lane)
    assert result.close_seconds < 1.0, fault_campaign.why(result)
    assert result.consumer_stopped, "the consumer loop did not end after close()" + fault_campaign.why(result)


@pytest.mark.parametrize("lane", LANES)
def test_nothing_delivered_after_close(fault_campaign: Campaign, lane: str) -> None:
    """No change is handed out once close() has returned."""
    result = fault_campaign.lane(lane)
    assert result.after_close == 0, fault_campaign.why(result)


@pytest.mark.parametrize("lane", LANES)
def test_lane_injected_all_its_faults(fault_campaign: Campaign, lane: str) -> None:
    """Each lane injected (and counted) as many effective faults as it was given."""
    result = fault_campaign.lane(lane)
    assert result.injected >= result.spec.faults, fault_campaign.why(result)


@pytest.mark.parametrize("target", TARGETS)
def test_at_least_200_faults_per_transport(fault_campaign: Campaign, target: str) -> None:
    """Each transport on each server takes at least 200 injected faults in the bounded run."""
    lanes = [r for name, r in fault_campaign.results.items() if name.startswith(target + "-")]
    total = sum(r.injected for r in lanes)
    by_kind = {r.spec.kind: r.injected for r in lanes}
    assert total >= CI_FAULTS_PER_TRANSPORT, f"{target}: {total} faults {by_kind} (seed {fault_campaign.seed})"


@pytest.mark.parametrize("lane", BLACKHOLE_LANES)
def test_dead_connection_noticed_within_two_stall_windows(fault_campaign: Campaign, lane: str) -> None:
    """A silent half-open connection (no FIN, no RST) is given up within two stall windows."""
    result = fault_campaign.lane(lane)
    assert result.notice_seconds, fault_campaign.why(result)
    worst = max(result.notice_seconds)
    assert worst < 2 * scenario.STALL_TIMEOUT, f"worst {worst:.2f}s" + fault_campaign.why(result)


@pytest.mark.parametrize("lane", KILL_LANES)
def test_first_change_within_a_second_after_restart(fault_campaign: Campaign, lane: str) -> None:
    """After kill -9 and a restart on the same port and data dir, a change written at once
    is delivered within a second of the server listening again."""
    result = fault_campaign.lane(lane)
    assert result.recovery_seconds, fault_campaign.why(result)
    worst = max(result.recovery_seconds)
    assert worst < 1.0, f"worst {worst:.2f}s" + fault_campaign.why(result)


@pytest.mark.parametrize("lane", BLACKHOLE_LANES)
def test_changes_resume_within_two_stall_windows_of_a_dead_connection(fault_campaign: Campaign, lane: str) -> None:
    """After a connection goes silent, a change written since is delivered within two stall
    windows (noticing takes one; the reconnect must not meet a second dead connection)."""
    result = fault_campaign.lane(lane)
    assert result.resume_seconds, fault_campaign.why(result)
    worst = max(result.resume_seconds)
    assert worst < 2 * scenario.STALL_TIMEOUT, f"worst {worst:.2f}s" + fault_campaign.why(result)


@pytest.mark.parametrize("lane", DEFAULT_BLACKHOLE_LANES)
def test_default_websocket_notices_dead_connection_within_its_window(fault_campaign: Campaign, lane: str) -> None:
    """With the WebSocket transport's default settings (25 s heartbeat floor), a silent
    connection is still noticed within the subscription's stall window (pings), not after
    the heartbeat floor."""
    result = fault_campaign.lane(lane)
    assert result.notice_seconds, fault_campaign.why(result)
    worst = max(result.notice_seconds)
    assert result.stall_window < 25, f"stall window {result.stall_window:.1f}s" + fault_campaign.why(result)
    assert worst < result.stall_window + 1.0, f"worst {worst:.2f}s" + fault_campaign.why(result)
