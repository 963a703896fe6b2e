"""The client-importable Mango matcher (`cloudsync.selector`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloudsync.errors import SelectorError
from cloudsync.selector import MISSING, compile_selector, get_field, parse_field, project, sort_key

ROOT = Path(__file__).resolve().parents[2]


def test_import_needs_no_server():
    """Importing the matcher imports neither aiohttp nor anything from cloudsync.server."""
    code = ("import sys, cloudsync.selector; "
            "print(sorted(m for m in sys.modules if m == 'aiohttp' or m.startswith(('aiohttp.', 'cloudsync.server'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_escaped_dot_is_part_of_the_name():
    """``a\\.b`` names the one field ``a.b``; an unescaped dot separates path steps."""
    assert parse_field("x.a\\.b") == ("x", "a.b")


def test_numeric_step_indexes_arrays():
    """A path step that is a number indexes into an array; past its end the value is missing."""
    doc = {"items": [{"q": 1}, {"q": 5}]}
    assert get_field(doc, ("items", "1", "q")) == 5
    assert get_field(doc, ("items", "2", "q")) is MISSING


def test_escaped_field_matches():
    """A selector on an escaped field name matches the document holding that literal key."""
    match = compile_selector({"a\\.b": 1})
    assert match({"a.b": 1}) and not match({"a": {"b": 1}})


def test_invalid_selector_is_a_selector_error():
    """An unknown operator raises SelectorError, which is also a ValueError."""
    with pytest.raises(SelectorError) as info:
        compile_selector({"a": {"$bogus": 1}})
    assert isinstance(info.value, ValueError)


def test_regex_matches_by_default():
    """``$regex`` works without the server (RE2 when installed, else Python's re)."""
    assert compile_selector({"s": {"$regex": "^ab"}})({"s": "abc"})


def test_bad_regex_is_a_selector_error():
    """A pattern that does not compile raises SelectorError."""
    with pytest.raises(SelectorError):
        compile_selector({"s": {"$regex": "("}})


def test_regex_compiler_is_pluggable():
    """A caller's regex compiler is used for ``$regex`` (the server passes its RE2-only one)."""
    seen = []

    class Always:
        def search(self, value: str) -> bool:
            return True

    def compile_re(pattern: str) -> Always:
        seen.append(pattern)
        return Always()

    assert compile_selector({"s": {"$regex": "x"}}, regex=compile_re)({"s": "anything"})
    assert seen == ["x"]


def test_tick_can_stop_evaluation():
    """The ``tick`` callback is called during a large ``$in`` and may raise to stop it."""

    class Stop(Exception):
        pass

    def tick() -> None:
        raise Stop

    with pytest.raises(Stop):
        compile_selector({"a": {"$in": list(range(10))}}, tick=tick)


def test_tick_can_stop_regex_compilation():
    """The ``tick`` callback is called before each ``$regex`` is compiled, so a selector of
    thousands of patterns can be stopped before all are compiled."""
    compiled: list[str] = []

    def compile_re(pattern: str) -> re.Pattern[str]:
        compiled.append(pattern)
        return re.compile(pattern)

    class Stop(Exception):
        pass

    def tick() -> None:
        if len(compiled) == 3:
            raise Stop

    with pytest.raises(Stop):
        compile_selector({"$and": [{"s": {"$regex": f"^{i}"}} for i in range(10)]}, regex=compile_re, tick=tick)
    assert compiled == ["^0", "^1", "^2"]


def test_sort_key_mixed_directions():
    """`sort_key` orders by several fields, each in its own direction, by CouchDB collation."""
    docs = [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 0, "b": "z"}, {"a": "s", "b": "x"}]
    ordered = sorted(docs, key=sort_key([("a", "asc"), ("b", "desc")]))
    assert ordered == [docs[2], docs[1], docs[0], docs[3]]


def test_sort_key_missing_field_first():
    """A document without the sort field sorts before one whose value is null."""
    docs = [{"a": None}, {}]
    assert sorted(docs, key=sort_key([("a", "asc")])) == [{}, {"a": None}]


def test_project_nests_dotted_fields():
    """`project` keeps dotted fields nested and leaves out missing ones."""
    assert project({"_id": "a", "addr": {"city": "Oslo", "zip": 1}}, ["_id", "addr.city", "nope"]) == {
        "_id": "a", "addr": {"city": "Oslo"}}
