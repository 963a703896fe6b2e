"""Database.subscribe() builds a Subscription with the options it is given."""

from __future__ import annotations

import cloudsync


def test_subscribe_passes_transport_and_options():
    """db.subscribe(transport, **options) delivers through that transport with those options."""
    rows = [{"seq": "1-a", "id": "x", "changes": [{"rev": "1-x"}]}]
    mock = cloudsync.MockTransport(lambda request: rows if request.since is None else [])
    db = cloudsync.Client("http://couch.test").database("db")
    with db.subscribe(mock, since=None, include_docs=True) as sub:
        assert isinstance(sub, cloudsync.Subscription)
        change = next(iter(sub))
    assert (change.seq, change.id, change.rev) == ("1-a", "x", "1-x")
    assert mock.requests[0].include_docs is True


def test_subscribe_signature_is_the_subscriptions():
    """db.subscribe() spells out every option of Subscription(), with the same names,
    kinds, defaults and annotations, so an IDE completes them."""
    import inspect

    subscribe = list(inspect.signature(cloudsync.Database.subscribe).parameters.values())[1:]
    constructor = list(inspect.signature(cloudsync.Subscription.__init__).parameters.values())[2:]
    assert subscribe == constructor
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in subscribe)
