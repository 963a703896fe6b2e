"""The one query-parameter reader (`cloudsync.server.params`)."""

from __future__ import annotations

import pytest

from cloudsync.server.errors import CouchError
from cloudsync.server.params import bool_param, int_param, json_param


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), (True, True), (False, False)])
def test_bool_values(value, expected):
    """``"true"``/``"false"`` and JSON booleans are read as booleans."""
    assert bool_param({"x": value}, "x") is expected


def test_bool_default():
    """An absent boolean is the default."""
    assert bool_param({}, "x", True) is True


def test_bad_bool_is_400():
    """Any other boolean value is CouchDB's 400 "Invalid boolean parameter"."""
    with pytest.raises(CouchError) as info:
        bool_param({"x": "yes"}, "x")
    assert (info.value.status, info.value.reason) == (400, "Invalid boolean parameter: x")


def test_int_default_and_value():
    """An integer parameter is read from digits; absent, it is the default."""
    assert int_param({"n": "12"}, "n") == 12 and int_param({}, "n", 3) == 3


def test_bad_int_is_400():
    """A negative integer parameter is 400."""
    with pytest.raises(CouchError) as info:
        int_param({"n": "-1"}, "n")
    assert info.value.status == 400


def test_json_first_name_present():
    """The first of several names present is parsed as JSON."""
    assert json_param({"start_key": '"a"', "x": "1"}, "startkey", "start_key", depth=8) == "a"


def test_json_already_parsed_is_kept():
    """A value that is not a string (from a JSON message) is taken as it is."""
    assert json_param({"doc_ids": ["a"]}, "doc_ids", depth=8) == ["a"]


def test_json_too_deep_is_400():
    """JSON nested past the depth is 400."""
    with pytest.raises(CouchError) as info:
        json_param({"k": "[[[1]]]"}, "k", depth=2)
    assert info.value.status == 400


def test_json_that_does_not_parse_is_400_saying_so():
    """A JSON parameter that does not parse is 400 with a reason naming the parameter and
    saying it is not valid JSON (not "invalid UTF-8", which it is not)."""
    with pytest.raises(CouchError) as info:
        json_param({"atts_since": "notjson"}, "atts_since", depth=8)
    assert (info.value.status, info.value.reason) == (400, "parameter atts_since is not valid JSON")
