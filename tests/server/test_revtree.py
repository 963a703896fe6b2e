"""The revision tree's pure functions (`cloudsync.server.revtree`), without SQL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudsync.server.errors import RowError
from cloudsync.server.revtree import REVS_LIMIT, Leaf, apply_edit, merge_path, rev_gen, sort_revs, winner

leaves_st = st.lists(
    st.tuples(st.integers(1, 50), st.text("0123456789abcdef", min_size=4, max_size=8), st.booleans()),
    min_size=1, max_size=8, unique_by=lambda t: (t[0], t[1]),
)


@given(leaves_st, st.randoms())
def test_winner_independent_of_order(specs, rnd):
    """The winner is the same whatever order the leaves are given in."""
    leaves = [Leaf(f"{g}-{h}", d, [h], None) for g, h, d in specs]
    shuffled = list(leaves)
    rnd.shuffle(shuffled)
    assert winner(leaves).rev == winner(shuffled).rev


def test_live_leaf_beats_longer_deleted_branch():
    """A live leaf wins over a deleted one even when the deleted branch is longer."""
    assert winner([Leaf("2-a", False, ["a"], None), Leaf("5-b", True, ["b"], None)]).rev == "2-a"


@pytest.mark.parametrize("rev", ["abc", "-abc", "1-", "x-abc", 3, None])
def test_malformed_rev_is_bad_request(rev):
    """A rev that is not ``N-hash`` raises a bad_request row error."""
    with pytest.raises(RowError) as info:
        rev_gen(rev)
    assert info.value.error == "bad_request"


def test_edit_of_a_non_leaf_conflicts():
    """An edit naming a rev that is not a leaf is a conflict."""
    leaves = {"2-b": Leaf("2-b", False, ["b", "a"], None)}
    with pytest.raises(RowError) as info:
        apply_edit(leaves, "1-a", "2-b", False, b"{}")
    assert info.value.error == "conflict"


def test_edit_extends_its_parent():
    """An edit of a leaf replaces it with a child one generation on, whose history continues the parent's."""
    leaves = {"1-a": Leaf("1-a", False, ["a"], None)}
    rev, history = apply_edit(leaves, "1-a", "1-a", False, b"{}")
    assert rev_gen(rev) == 2 and history == [rev.partition("-")[2], "a"] and leaves == {}


def test_history_is_stemmed():
    """A branch history keeps at most REVS_LIMIT revisions."""
    old = [f"h{i}" for i in range(REVS_LIMIT)]
    leaves = {f"{REVS_LIMIT}-h0": Leaf(f"{REVS_LIMIT}-h0", False, old, None)}
    _, history = apply_edit(leaves, f"{REVS_LIMIT}-h0", f"{REVS_LIMIT}-h0", False, b"{}")
    assert len(history) == REVS_LIMIT and history[-1] == old[-2]


def test_replicated_known_rev_is_skipped():
    """A ``new_edits=false`` revision already in the tree needs no write."""
    leaves = {"2-b": Leaf("2-b", False, ["b", "a"], None)}
    assert merge_path(leaves, "1-a", None) is None


def test_replicated_path_extends_its_ancestor_leaf():
    """A replicated path whose ancestor is a leaf replaces that leaf."""
    leaves = {"1-a": Leaf("1-a", False, ["a"], None)}
    history = merge_path(leaves, "2-b", {"start": 2, "ids": ["b", "a"]})
    assert history == ["b", "a"] and leaves == {}


def test_unrelated_replicated_path_is_a_new_branch():
    """A replicated path unrelated to the tree leaves existing leaves in place (a conflict)."""
    leaves = {"1-a": Leaf("1-a", False, ["a"], None)}
    assert merge_path(leaves, "1-z", None) == ["z"] and "1-a" in leaves


def test_mismatched_revisions_are_bad_request():
    """``_revisions`` that do not end in ``_rev`` are a bad_request row error."""
    with pytest.raises(RowError):
        merge_path({}, "2-b", {"start": 2, "ids": ["c"]})


def test_conflicts_listed_newest_first():
    """`sort_revs` lists revs by generation, then rev, newest first."""
    assert sort_revs(["1-z", "3-a", "3-b", "10-a"]) == ["10-a", "3-b", "3-a", "1-z"]
