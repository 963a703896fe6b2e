"""IAMAuth's arguments and what it shows of itself (no server needed)."""

from __future__ import annotations

import pytest

import cloudsync


@pytest.mark.parametrize("key", ["", None, 42])
def test_an_empty_or_non_string_key_is_refused(key):
    """An API key must be a non-empty string: ValueError at construction, not at the first request."""
    with pytest.raises(ValueError):
        cloudsync.IAMAuth(key)  # type: ignore[arg-type]


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5])
def test_refresh_fraction_outside_zero_to_one_is_refused(fraction):
    """`refresh_fraction` must be in (0, 1]."""
    with pytest.raises(ValueError):
        cloudsync.IAMAuth("k", refresh_fraction=fraction)


def test_repr_shows_the_token_url_and_not_the_key():
    """repr names the token endpoint only."""
    shown = repr(cloudsync.IAMAuth("secret-key-123"))
    assert "secret-key-123" not in shown and "iam.cloud.ibm.com" in shown


def test_token_error_is_a_transport_error_that_was_not_sent():
    """TokenError: a TransportError whose request never reached the database."""
    error = cloudsync.TokenError("IAM token endpoint answered 400", status=400, retryable=False)
    assert isinstance(error, cloudsync.TransportError) and error.sent is False
    assert error.status == 400 and error.retryable is False
