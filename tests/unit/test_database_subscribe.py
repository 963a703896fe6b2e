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
