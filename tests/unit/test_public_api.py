"""The public surface is small, sorted and complete."""

from __future__ import annotations

import inspect

import cloudsync


def test_all_is_sorted():
    """cloudsync.__all__ is sorted, so additions are easy to review."""
    assert cloudsync.__all__ == sorted(cloudsync.__all__)


def test_all_is_complete():
    """Every public class or function exported at the top level is listed in __all__, and vice versa."""
    public = {
        name
        for name, value in vars(cloudsync).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public == set(cloudsync.__all__)


def test_every_error_is_a_cloudsync_error():
    """One error tree: every exported exception derives from CloudSyncError."""
    for name in cloudsync.__all__:
        value = getattr(cloudsync, name)
        if inspect.isclass(value) and issubclass(value, Exception):
            assert issubclass(value, cloudsync.CloudSyncError), name
