"""`_db_updates` rows in the wire parsers: each feed's `{"db_name", "type", "seq"}` row
becomes a DbUpdate, whose dedupe key is its event and seq."""

from __future__ import annotations

import pytest

from cloudsync import DbUpdate, InvalidResponse, LastSeq
from cloudsync.wire import ContinuousParser, LongPollParser, SSEFeedParser

ROW = b'{"db_name":"a","type":"created","seq":"1-g1AAAA"}'


def test_a_normal_answer_gives_db_updates_and_last_seq():
    """A normal/long-poll answer's rows are DbUpdates, followed by its LastSeq."""
    parser = LongPollParser()
    items = parser.feed(b'{"results":[\n' + ROW + b'\n],\n"last_seq":"1-g1AAAA"}\n') + parser.finish()
    assert items == [DbUpdate("a", "created", "1-g1AAAA"), LastSeq("1-g1AAAA")]


def test_a_continuous_line_is_a_db_update():
    """A continuous feed's line is a DbUpdate; its `last_seq` line ends the feed."""
    parser = ContinuousParser()
    assert parser.feed(ROW + b'\n{"last_seq":"1-g1AAAA"}\n') == [DbUpdate("a", "created", "1-g1AAAA"),
                                                                 LastSeq("1-g1AAAA")]
    assert parser.ended


def test_an_event_is_a_db_update():
    """An eventsource event's data is a DbUpdate."""
    parser = SSEFeedParser()
    assert parser.feed(b"data: " + ROW + b'\nid: "1-g1AAAA"\n\n') == [DbUpdate("a", "created", "1-g1AAAA")]


@pytest.mark.parametrize("row", [b'{"db_name":1,"type":"created","seq":"1"}', b'{"db_name":"a","seq":"1"}'])
def test_a_malformed_row_is_an_invalid_response(row):
    """A row whose `db_name` or `type` is not a string is InvalidResponse, not a crash later."""
    with pytest.raises(InvalidResponse):
        ContinuousParser().feed(row + b"\n")


def test_the_dedupe_key_is_the_event_and_its_seq():
    """A DbUpdate keys the dedupe window by `type:db_name` and its seq as text (an
    integer seq too), so a replayed row is dropped and a later event of the same kind is not."""
    assert (DbUpdate("a", "updated", 7).id, DbUpdate("a", "updated", 7).rev) == ("updated:a", "7")
    assert DbUpdate("a", "updated", "8-x").rev == "8-x"
    assert DbUpdate("a", "updated", None).rev is None


def test_a_subscription_drops_a_replayed_db_update():
    """A reconnect after a failure may replay an event already delivered: the dedupe
    window drops it, as it drops a replayed change."""
    from cloudsync import NetworkError, ReconnectPolicy, Subscription

    from ._feed_helpers import InfoDB, script

    a, b, c = DbUpdate("a", "created", "1-x"), DbUpdate("b", "updated", "2-x"), DbUpdate("a", "updated", "3-x")
    transport = script([a, b, NetworkError("boom")], [b, c])
    with Subscription(InfoDB(), transport, since=0, reconnect=ReconnectPolicy(backoff=0.01)) as sub:
        got = [next(sub) for _ in range(3)]
        duplicates = sub.stats.duplicates
    assert got == [a, b, c]
    assert duplicates == 1
