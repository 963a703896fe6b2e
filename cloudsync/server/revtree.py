"""A document's revision tree as pure functions: no SQL, no I/O.

A document is stored as its *leaves* (the winner and, after `new_edits=false`
replication, the losing branches); each leaf carries its branch history, newest first, as
the hash parts of its ancestors' revs (`revs`), at most `REVS_LIMIT` of them (older
ones are stemmed). A rev is `<generation>-<hash>`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from .errors import RowError

__all__ = ["REVS_LIMIT", "Leaf", "apply_edit", "latest_leaves", "merge_path", "missing_revs", "new_rev", "rev_gen",
           "sort_revs", "winner"]

REVS_LIMIT = 100
"""Revision history kept per leaf (CouchDB's revs_limit is 1000; a shorter one keeps
every update's row small)."""


class Leaf:
    """One leaf revision: its rev, whether it is a deletion, its branch history (hash
    parts, newest first, starting with its own) and its stored body (opaque here)."""

    __slots__ = ("rev", "deleted", "revs", "body")

    def __init__(self, rev: str, deleted: bool, revs: list[str], body: bytes | None) -> None:
        self.rev, self.deleted, self.revs, self.body = rev, deleted, revs, body

    def history(self) -> list[str]:
        """The full revs of this branch, newest first."""
        gen = rev_gen(self.rev)
        return [f"{gen - i}-{h}" for i, h in enumerate(self.revs)]


def rev_gen(rev: Any) -> int:
    """The generation of `rev` (`"3-abc"` -> 3).

    Raises:
        RowError: `bad_request` unless `rev` is a string `N-hash`.
    """
    if isinstance(rev, str):
        gen, _, digest = rev.partition("-")
        if digest and gen.isascii() and gen.isdigit() and len(gen) <= 18:
            return int(gen)
    raise RowError("bad_request", "Invalid rev format")


def new_rev(gen: int, parent: str | None, deleted: bool, fields: bytes) -> str:
    """A revision id `gen-md5`, deterministic from the parent rev and the content."""
    h = hashlib.md5(parent.encode() if parent else b"")
    h.update(b"\x01" if deleted else b"\x00")
    h.update(fields)
    return f"{gen}-{h.hexdigest()}"


def winner(leaves: Iterable[Leaf]) -> Leaf:
    """CouchDB's deterministic winner: live beats deleted, then the longest branch, then
    the greater rev (so the choice does not depend on the order leaves arrived in)."""
    return max(leaves, key=lambda leaf: (not leaf.deleted, rev_gen(leaf.rev), leaf.rev))


def sort_revs(revs: Iterable[str]) -> list[str]:
    """Revs newest first (by generation, then rev), as CouchDB lists `_conflicts`."""
    return sorted(revs, key=lambda rev: (rev_gen(rev), rev), reverse=True)


def apply_edit(leaves: dict[str, Leaf], given: Any, current: str | None, deleted: bool, fields: bytes
               ) -> tuple[str, list[str]]:
    """A normal edit (`new_edits=true`) on a document with `leaves`.

    Args:
        leaves: the document's leaves by rev; the edited parent leaf is removed from it.
        given: the `_rev` the edit names (`None`: a new document, or one whose every
            leaf is deleted, which then extends the current winner).
        current: the document's current winning rev (`None`: the document is new).
        deleted: whether the edit deletes the document.
        fields: the new revision's fields as JSON (they go into its rev hash).

    Returns:
        The new rev and its branch history (hash parts, newest first, stemmed).

    Raises:
        RowError: `conflict` when `given` is not a leaf (or is missing while a live leaf exists).
    """
    if given is None:
        if current is not None and not all(leaf.deleted for leaf in leaves.values()):
            raise RowError("conflict", "Document update conflict.")
        parent = current
    elif given in leaves:
        parent = given
    else:
        raise RowError("conflict", "Document update conflict.")
    gen = rev_gen(parent) + 1 if parent else 1
    rev = new_rev(gen, parent, deleted, fields)
    history = [rev.partition("-")[2]]
    if parent:
        history += leaves.pop(parent).revs[: REVS_LIMIT - 1]
    return rev, history


def merge_path(leaves: dict[str, Leaf], rev: Any, revisions: Any) -> list[str] | None:
    """A replicated revision (`new_edits=false`) with its `_revisions` path.

    The leaf it extends (its nearest ancestor that is a leaf) is removed from `leaves`;
    an unrelated path becomes a new branch (a conflict).

    Returns:
        The new leaf's branch history (hash parts, newest first, stemmed), or `None`
        when `rev` is already known (nothing to write).

    Raises:
        RowError: `bad_request` for a malformed rev or a path that does not end in it.
    """
    rev_gen(rev)
    assert isinstance(rev, str)
    if isinstance(revisions, dict) and isinstance(revisions.get("ids"), list):
        start = revisions.get("start")
        ids = [str(h) for h in revisions["ids"]][:REVS_LIMIT]
        if start != rev_gen(rev) or not ids or f"{start}-{ids[0]}" != rev:
            raise RowError("bad_request", "_revisions do not match _rev")
        full = [f"{start - i}-{h}" for i, h in enumerate(ids)]
    else:
        full = [rev]
    known = set()
    for leaf in leaves.values():
        known.update(leaf.history())
    if rev in known:
        return None
    for ancestor in full[1:]:
        if ancestor in leaves:
            del leaves[ancestor]
            break
    return [r.partition("-")[2] for r in full]


def missing_revs(leaves: Iterable[Leaf], revs: Iterable[str]) -> tuple[list[str], list[str]]:
    """`_revs_diff` for one document: which of `revs` its tree does not hold, and its
    leaves that could be their ancestors (those of a lower generation than one of them),
    as CouchDB's `couch_db:find_missing`.

    Returns:
        The missing revs (in the order given, once each) and the possible ancestors.
    """
    leaves = list(leaves)
    known = {rev for leaf in leaves for rev in leaf.history()}
    missing = [rev for rev in dict.fromkeys(revs) if rev not in known]
    gens = [rev_gen(rev) for rev in missing]
    ancestors = [leaf.rev for leaf in leaves if any(rev_gen(leaf.rev) < gen for gen in gens)]
    return missing, ancestors


def latest_leaves(leaves: Iterable[Leaf], rev: str) -> list[Leaf]:
    """The leaves at the end of every branch through `rev` (`latest=true`): the leaf
    `rev` itself, or its descendants' leaves; empty when `rev` is unknown."""
    return [leaf for leaf in leaves if rev in leaf.history()]
