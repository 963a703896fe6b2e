"""`read_pages`, the one paging loop of the normal `_changes` feed (behind `db.changes()`
and a one-shot replication's `ChangesPages`): where each page ends, when the read ends,
and a server whose full page does not move `last_seq` being an error, not a loop."""

from __future__ import annotations

import pytest
import responses

from cloudsync.changes import Page, read_pages
from cloudsync.errors import InvalidResponse
from cloudsync.replication.feed import ChangesPages
from cloudsync.transports import ChangesRequest

from ._feed_helpers import URL, FakeDB, c, query, row


class Pages:
    """A PageReader answering the scripted pages in turn, recording each request."""

    def __init__(self, *pages: Page) -> None:
        self.pages = list(pages)
        self.requests: list[ChangesRequest] = []

    def __call__(self, request: ChangesRequest) -> Page:
        self.requests.append(request)
        return self.pages.pop(0)


def test_each_page_is_asked_for_from_the_last_seq_of_the_one_before():
    """Page after page from `since`, each from the `last_seq` its predecessor answered."""
    read = Pages(Page([c(1), c(2)], 2, "s2"), Page([c(3)], 1, "s3"))
    pages = list(read_pages(read, ChangesRequest(since="s0"), 2))
    assert pages == [([c(1), c(2)], "s2"), ([c(3)], "s3")]
    assert [(r.since, r.limit) for r in read.requests] == [("s0", 2), ("s2", 2)]


def test_an_empty_page_is_yielded_with_where_it_ends():
    """A filtered page without changes still moves the read on: it is yielded with its
    `last_seq` (a replication checkpoints it)."""
    read = Pages(Page([], 0, "s9"))
    assert list(read_pages(read, ChangesRequest(), 5)) == [([], "s9")]


def test_a_page_without_last_seq_ends_at_its_last_change_else_where_it_began():
    """No `last_seq` in the answer: the page ends at its last change's seq, or (no
    changes either) at the `since` it was asked from."""
    read = Pages(Page([c(1), c("s2")], 2, None), Page([], 0, None))
    assert [end for _, end in read_pages(read, ChangesRequest(since="s0"), 2)] == ["s2", "s2"]


def test_pending_zero_ends_the_read_after_a_full_page():
    """A full page saying `pending: 0` is the end: no request for an empty page after it."""
    read = Pages(Page([c(1), c(2)], 2, "s2", pending=0))
    assert len(list(read_pages(read, ChangesRequest(), 2))) == 1
    assert len(read.requests) == 1


def test_limit_caps_the_rows_asked_for():
    """With `limit`, the last page asks only for the rows still wanted."""
    read = Pages(Page([c(1), c(2)], 2, "s2"), Page([c(3)], 1, "s3"))
    list(read_pages(read, ChangesRequest(), 2, limit=3))
    assert [r.limit for r in read.requests] == [2, 1]


def test_a_full_page_that_does_not_move_last_seq_is_an_error():
    """A server answering a full page with the `last_seq` it was asked from would be read
    forever: InvalidResponse after that page instead."""
    read = Pages(Page([c(1), c(2)], 2, "s0"))
    pages = read_pages(read, ChangesRequest(since="s0"), 2)
    assert next(pages) == ([c(1), c(2)], "s0")
    with pytest.raises(InvalidResponse, match="did not move last_seq"):
        next(pages)


@responses.activate
def test_a_one_shot_replications_pages_stop_at_a_full_page_that_does_not_move():
    """ChangesPages (a one-shot replication's reader) pages through `read_pages`: a
    server repeating a full page from the same seq fails the read instead of having it
    read (and replicated) forever."""
    stuck = {"results": [row(1, "a"), row(2, "b")], "last_seq": "s0"}
    responses.get(URL, json=stuck)
    pages = ChangesPages(FakeDB(), 2).pages("s0")
    changes, end = next(pages)
    assert [ch.id for ch in changes] == ["a", "b"] and end == "s0"
    with pytest.raises(InvalidResponse, match="did not move last_seq"):
        next(pages)
    assert query(responses.calls[0])["style"] == "all_docs"
