"""The server's seq strings (`cloudsync.server.seq`)."""

from __future__ import annotations

import pytest

from cloudsync.server.errors import CouchError
from cloudsync.server.seq import MAX_SEQ, compare_seqs, decode_seq, encode_seq, seq_bytes


@pytest.mark.parametrize("n", [1, 4095, 4096, 123_456_789, MAX_SEQ])
def test_round_trip(n):
    """A seq decodes back to its number."""
    assert decode_seq(encode_seq(n)) == n


def test_shape_is_couchdb_3_like():
    """A seq is ``N-g1AAAA`` followed by 22 URL-safe base64 characters; seq 0 is ``"0"``."""
    s = encode_seq(42)
    assert s.startswith("42-g1AAAA") and len(s) == len("42-g1AAAA") + 22
    assert encode_seq(0) == "0" and seq_bytes(42) == s.encode()


def test_deterministic():
    """The same number always gives the same string (resumable across restarts)."""
    assert encode_seq(5000) == encode_seq(5000) != encode_seq(5001)


@pytest.mark.parametrize("value", ["abc", "-1", "1-!!", True, -1, MAX_SEQ + 1, str(MAX_SEQ + 1), None])
def test_malformed_since_is_400(value):
    """Anything that is not a seq, digits or a non-negative JSON integer is 400."""
    with pytest.raises(CouchError) as info:
        decode_seq(value)
    assert info.value.status == 400


def test_compare_by_number_not_text():
    """Seqs compare by their numbers (``"10-..."`` after ``"9-..."``)."""
    assert compare_seqs(encode_seq(10), encode_seq(9)) == 1 and compare_seqs("3", 3) == 0
