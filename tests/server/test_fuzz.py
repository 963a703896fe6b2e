"""Property-based fuzz of the server: random paths, query parameters and bodies never get
a 5xx, never hang, and the server stays up."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudsync.server.testing import ServerProcess

SEGMENTS = ["_all_docs", "_changes", "_find", "_explain", "_bulk_docs", "_bulk_get", "_index", "_design",
            "_local", "_session", "_up", "_all_dbs", "_uuids", "_ensure_full_commit", "doc", "json", "x"]
PARAMS = ["limit", "skip", "since", "feed", "descending", "include_docs", "keys", "key", "startkey", "endkey",
          "selector", "filter", "doc_ids", "heartbeat", "style", "rev", "revs", "conflicts", "count",
          "inclusive_end", "update_seq", "new_edits", "meta"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["selector", "docs", "keys", "_id", "_rev", "$in", "$or", "$regex", "$elemMatch",
                         "$gt", "$all", "a", "fields", "sort", "limit", "index", "id", "name", "password"])
        | st.text(max_size=8), children, max_size=5),
    max_leaves=30)

param_values = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-5, max_value=2 ** 70).map(str),
    json_values.map(lambda v: json.dumps(v)),
    st.sampled_from(["true", "false", "now", "normal", "longpoll", "_selector", "_doc_ids", "all_docs", "²",
                     "[" * 100, '"\\ud800"', "0-x"]),
)


@st.composite
def requests_(draw: Any) -> tuple[str, str, dict[str, str], bytes | None]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "COPY"]))
    segments = draw(st.lists(st.sampled_from(SEGMENTS) | st.text(max_size=12), max_size=4))
    db = draw(st.sampled_from(["fuzz", "fuzz", "other", "_x", "A"]))
    path = "/" + "/".join([db] + [quote(s, safe="") for s in segments])
    if draw(st.booleans()):
        path = "/" + "/".join(quote(s, safe="") for s in segments)
    params = draw(st.dictionaries(st.sampled_from(PARAMS), param_values, max_size=4))
    if "feed" in params or draw(st.booleans()):
        params["timeout"] = "100"  # a legitimate feed would wait for changes
    body = draw(st.one_of(st.none(), json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)))
    return method, path, params, body


@pytest.fixture(scope="module")
def fuzz_db(hardened: ServerProcess) -> str:
    requests.put(hardened.url + "/fuzz")
    requests.post(hardened.url + "/fuzz/_bulk_docs", json={"docs": [{"_id": f"d{i}", "n": i} for i in range(20)]})
    requests.post(hardened.url + "/fuzz/_index", json={"index": {"fields": ["n"]}})
    return hardened.url + "/fuzz"


@settings(max_examples=int(os.environ.get("CLOUDSYNC_FUZZ_EXAMPLES", "120")), deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(req=requests_())
def test_fuzzed_requests_never_5xx(hardened, fuzz_db, req):
    """Any method, path, parameters and body: a 2xx-4xx answer within 10 s (JSON unless
    HEAD or 204), and ``/_up`` answers afterwards."""
    method, path, params, body = req
    r = requests.request(method, hardened.url + path, params=params, data=body, timeout=10,
                         headers={"Content-Type": "application/json"})
    assert r.status_code < 500, (method, path, params, body, r.status_code, r.text[:300])
    if method != "HEAD" and r.status_code >= 400:
        error = r.json()
        assert isinstance(error.get("error"), str) and isinstance(error.get("reason"), str)
    assert requests.get(hardened.url + "/_up", timeout=5).status_code == 200
