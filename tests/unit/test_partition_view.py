"""`Partition.view()` against answers no server here gives on demand: the embedded server
has no views and pouchdb-server no partitions, so a partitioned view (IBM Cloudant,
CouchDB 3) is faked with ``responses``."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import responses

import cloudsync

URL = "http://127.0.0.1:5984"
VIEW = f"{URL}/readings/_partition/sensor-1/_design/by/_view/temp"


@responses.activate
def test_partition_view_reads_the_partitions_view_path_page_by_page():
    """The rows come from `/{db}/_partition/{p}/_design/{d}/_view/{v}`, with the range
    parameters JSON-encoded and pages followed by `startkey`/`startkey_docid`."""
    rows = [{"id": f"sensor-1:{i}", "key": i, "value": None} for i in range(3)]
    responses.get(VIEW, json={"total_rows": 3, "offset": 0, "rows": rows[:2] + [rows[2]]})
    responses.get(VIEW, json={"total_rows": 3, "offset": 2, "rows": rows[2:]})
    with cloudsync.Client(URL, retry=cloudsync.RetryPolicy.never()) as client:
        got = list(client.database("readings").partition("sensor-1").view("by", "temp", startkey=0, page_size=2))
    assert got == rows
    first = parse_qs(urlsplit(responses.calls[0].request.url).query)
    assert json.loads(first["startkey"][0]) == 0 and first["limit"] == ["3"]
    second = parse_qs(urlsplit(responses.calls[1].request.url).query)
    assert json.loads(second["startkey"][0]) == 2 and second["startkey_docid"] == ["sensor-1:2"]
