"""[SubscriptionOptions][cloudsync.SubscriptionOptions]: the options that tune a
subscription, typed once for every entry point that passes them on.

A module of its own, a leaf, so that what only passes options on (a live query, a
replication, `_db_updates`) can name them without importing the subscription.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from ._reader import SubscriptionState

__all__ = ["SubscriptionOptions", "check_subscription_options"]


class SubscriptionOptions(TypedDict, total=False):
    """The options that tune a [Subscription][cloudsync.Subscription] without changing
    what it follows: how its feed is read and how changes reach the application. Each
    has the meaning and default of the subscription's argument of the same name.

    What builds a subscription for a purpose of its own
    ([Client.subscribe_db_updates][cloudsync.Client.subscribe_db_updates],
    [LiveQuery][cloudsync.LiveQuery], [Replication][cloudsync.Replication]'s
    `subscription_options`) takes these and sets the rest itself (position, document
    filters, acknowledgement, `reconnect`), so an editor offers exactly these keyword
    arguments there, and any other is a `TypeError`.

    Attributes:
        heartbeat: Seconds between the heartbeats asked of the server.
        feed_timeout: Seconds after which the server should end a feed cleanly.
        stall_timeout: Seconds without a byte after which a connection is replaced.
        stall_grace: Seconds added to the default `stall_timeout`.
        connect_timeout: Seconds to open a connection.
        queue_size: At most this many changes held between reader and application.
        dedupe_window: How many delivered (document, revisions) pairs to remember.
        on_state_change: Called as `on_state_change(old, new)` on every state change.
        transport_options: Passed to a named transport's constructor.
    """

    heartbeat: float
    feed_timeout: float | None
    stall_timeout: float | None
    stall_grace: float
    connect_timeout: float
    queue_size: int
    dedupe_window: int
    on_state_change: Callable[[SubscriptionState, SubscriptionState], Any] | None
    transport_options: Mapping[str, Any] | None


def check_subscription_options(options: Mapping[str, Any], problem: str) -> None:
    """Raise `TypeError`, `problem` followed by the names, for the keys of `options` that
    are not [SubscriptionOptions][cloudsync.SubscriptionOptions]' (where `**options`
    would otherwise take anything, or pass it on to fail later, or not at all)."""
    unknown = sorted(set(options) - SubscriptionOptions.__optional_keys__)
    if unknown:
        raise TypeError(f"{problem}: {', '.join(map(repr, unknown))}")
