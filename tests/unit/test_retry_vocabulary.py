"""RetryPolicy and ReconnectPolicy speak one vocabulary; the names ReconnectPolicy and
SubscriptionState had before still work for one release, with a DeprecationWarning."""

from __future__ import annotations

import dataclasses

import pytest

import cloudsync
from cloudsync import ReconnectPolicy, RetryPolicy


def test_both_policies_name_the_same_ideas_alike():
    """The ideas both policies have carry the same names in both."""
    shared = {"backoff", "max_backoff", "attempts", "max_time", "max_retry_after", "sleep", "random"}
    assert shared <= {f.name for f in dataclasses.fields(RetryPolicy)}
    assert shared <= {f.name for f in dataclasses.fields(ReconnectPolicy)}


def test_reconnect_attempts_counts_failures_in_a_row_the_first_included():
    """attempts=3 gives up at the third failed connection in a row, as RetryPolicy(attempts=3) tries three times."""
    policy = ReconnectPolicy(attempts=3)
    assert [policy.gives_up(n, 0.0) for n in (1, 2, 3)] == [False, False, True]


def test_reconnect_max_time_bounds_the_failing_time():
    """No reconnect starts once the connections have failed for longer than max_time seconds."""
    policy = ReconnectPolicy(max_time=5.0)
    assert not policy.gives_up(100, 5.0) and policy.gives_up(1, 5.1)


def test_reconnect_backoff_is_capped_full_jitter():
    """The n-th failure waits up to min(max_backoff, backoff * 2**(n-1)) seconds."""
    policy = ReconnectPolicy(backoff=0.5, max_backoff=3.0, random=lambda: 1.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("old", "value", "new", "expected"),
    [("initial", 0.2, "backoff", 0.2), ("max", 7.0, "max_backoff", 7.0),
     ("max_errors", 3, "attempts", 4), ("max_error_time", 9.0, "max_time", 9.0)],
)
def test_old_reconnect_argument_warns_and_maps(old, value, new, expected):
    """An old ReconnectPolicy argument warns and sets its new name (max_errors=n is attempts=n + 1)."""
    with pytest.warns(DeprecationWarning, match=f"ReconnectPolicy.{old} is deprecated; use {new}"):
        policy = ReconnectPolicy(**{old: value})
    assert getattr(policy, new) == expected


@pytest.mark.parametrize(("old", "expected"), [("initial", 0.2), ("max", 7.0), ("max_errors", 3), ("max_error_time", 9.0)])
def test_old_reconnect_attribute_warns_and_reads(old, expected):
    """An old ReconnectPolicy attribute warns and reads the value in its old meaning."""
    policy = ReconnectPolicy(backoff=0.2, max_backoff=7.0, attempts=4, max_time=9.0)
    with pytest.warns(DeprecationWarning, match=f"ReconnectPolicy.{old} is deprecated"):
        assert getattr(policy, old) == expected


def test_unknown_reconnect_argument_is_a_type_error():
    """A misspelt argument is refused as by any constructor, not taken for an old name."""
    with pytest.raises(TypeError, match="initail"):
        ReconnectPolicy(initail=1.0)


@pytest.mark.parametrize("module", ["cloudsync", "cloudsync.subscription"])
def test_state_is_a_deprecated_name_of_subscription_state(module):
    """`State` still imports from cloudsync and cloudsync.subscription, with a warning."""
    import importlib

    with pytest.warns(DeprecationWarning, match="SubscriptionState"):
        state = importlib.import_module(module).State
    assert state is cloudsync.SubscriptionState
