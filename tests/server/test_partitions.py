"""Partitioned databases as CouchDB 3 serves them: the `partitioned` property, ids of the
form `partition:docid`, `/{db}/_partition/{p}/...`, partitioned Mango indexes, and the
global queries a partitioned database refuses. Errors and reasons are CouchDB's
(`couch_partition.erl`, `chttpd_db:handle_partition_req`, `mango_idx.erl`)."""

from __future__ import annotations

import itertools

import pytest
import requests

from cloudsync.server.testing import serve

_names = itertools.count()
DOCS = [{"_id": f"{p}:{i:02d}", "n": i, "kind": p} for p in ("aa", "bb", "cc") for i in range(12)]


@pytest.fixture
def pdb(server, http) -> str:
    """The URL of a new, empty partitioned database."""
    url = f"{server.url}/part-{next(_names)}"
    assert http.put(url, params={"partitioned": "true"}).status_code == 201
    return url


@pytest.fixture
def seeded(pdb, http) -> str:
    """A partitioned database holding `DOCS`: twelve documents in each of aa, bb, cc."""
    assert http.post(pdb + "/_bulk_docs", json={"docs": DOCS}).status_code == 201
    return pdb


def _index(http, url, fields, **extra):
    answer = http.post(url + "/_index", json={"index": {"fields": fields}, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _ids(answer) -> list[str]:
    body = answer.json()
    return [d["_id"] for d in body["docs"]] if "docs" in body else [r["id"] for r in body["rows"]]


# -- the property -------------------------------------------------------------------------------


def test_partitioned_db_info_has_partitioned_prop(pdb, http):
    """`PUT /db?partitioned=true` makes a database whose info says `props: {partitioned: true}`."""
    assert http.get(pdb).json()["props"] == {"partitioned": True}


def test_plain_db_info_has_empty_props(db, http):
    """A database created without the parameter has empty `props`."""
    assert http.get(db).json()["props"] == {}


def test_bad_partitioned_parameter_is_400(unused_db, http):
    """`partitioned` other than true/false is CouchDB's 400 and creates nothing."""
    answer = http.put(unused_db, params={"partitioned": "tru"})
    assert (answer.status_code, answer.json()) == (400, {"error": "bad_request",
                                                         "reason": "Invalid `partitioned` parameter"})
    assert http.get(unused_db).status_code == 404


def test_partitioned_prop_survives_a_restart(tmp_path):
    """The property is stored with the database: a restarted server still enforces it."""
    with serve(tmp_path) as server, requests.Session() as http:
        url = server.url + "/kept"
        assert http.put(url, params={"partitioned": "true"}).status_code == 201
        server.restart()
        assert http.get(url).json()["props"] == {"partitioned": True}
        assert http.put(url + "/nopartition", json={}).json()["error"] == "illegal_docid"


# -- document ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(("doc_id", "error", "reason"), [
    ("nopartition", "illegal_docid", "Doc id must be of form partition:id"),
    ("p:", "illegal_docid", "Document id must not be empty"),
    ("p:_x", "illegal_docid", "Only reserved document ids may start with underscore."),
    ("_p:x", "illegal_docid", "Only reserved document ids may start with underscore."),
    (":x", "illegal_partition", "Partition must not be empty"),
])
def test_put_of_an_id_without_a_valid_partition_is_400(pdb, http, doc_id, error, reason):
    """`PUT` of an id that is not `partition:docid` is 400 with CouchDB's error and reason."""
    answer = http.put(f"{pdb}/{doc_id}", json={})
    assert (answer.status_code, answer.json()) == (400, {"error": error, "reason": reason})


def test_post_without_an_id_is_illegal_docid(pdb, http):
    """`POST /db` with no `_id` (the server would make a plain uuid) is 400 `illegal_docid`."""
    answer = http.post(pdb, json={"x": 1})
    assert (answer.status_code, answer.json()["error"]) == (400, "illegal_docid")


def test_bulk_docs_with_an_id_without_partition_is_refused_whole(pdb, http):
    """`_bulk_docs` with one id lacking a partition is a 400 `illegal_docid` for the whole
    request, as CouchDB answers it: the good documents are not stored either."""
    answer = http.post(pdb + "/_bulk_docs", json={"docs": [{"_id": "p:1"}, {"_id": "bad"}]})
    assert answer.status_code == 400
    assert answer.json() == {"error": "illegal_docid", "reason": "Doc id must be of form partition:id"}
    assert http.get(pdb + "/p:1").status_code == 404


def test_bulk_docs_without_ids_is_refused_in_a_partitioned_db(pdb, http):
    """A `_bulk_docs` document without `_id` would get a server-made id without a
    partition: 400 `illegal_docid`."""
    answer = http.post(pdb + "/_bulk_docs", json={"docs": [{"a": 1}]})
    assert (answer.status_code, answer.json()["error"]) == (400, "illegal_docid")


def test_replicated_write_of_an_id_without_partition_is_refused(pdb, http):
    """`new_edits=false` (replication) is checked too: nothing without a partition is stored."""
    doc = {"_id": "plain", "_rev": "1-abc"}
    answer = http.post(pdb + "/_bulk_docs", json={"docs": [doc], "new_edits": False})
    assert (answer.status_code, answer.json()["error"]) == (400, "illegal_docid")
    assert http.get(pdb + "/plain").status_code == 404


def test_attachment_upload_creating_an_unpartitioned_doc_is_refused(pdb, http):
    """`PUT /db/doc/att` that would create a document without a partition is 400."""
    answer = http.put(pdb + "/plain/a.txt", data=b"x", headers={"Content-Type": "text/plain"})
    assert (answer.status_code, answer.json()["error"]) == (400, "illegal_docid")


def test_design_and_local_docs_need_no_partition(pdb, http):
    """`_design/` and `_local/` documents keep their ids in a partitioned database."""
    assert http.put(pdb + "/_design/d", json={"language": "query", "views": {}}).status_code == 201
    assert http.put(pdb + "/_local/checkpoint", json={"seq": 1}).status_code == 201


def test_partitioned_ids_are_written_and_read(pdb, http):
    """A `partition:docid` document is stored and read back as usual."""
    assert http.put(pdb + "/p:1", json={"v": 1}).status_code == 201
    assert http.get(pdb + "/p:1").json()["v"] == 1


def test_plain_db_takes_ids_without_partition(db, http):
    """The partition rule applies to partitioned databases only."""
    assert http.put(db + "/plain", json={}).status_code == 201


# -- /_partition/{p} ----------------------------------------------------------------------------


def test_partition_info_counts_only_that_partition(seeded, http):
    """`GET /db/_partition/p` answers that partition's live and deleted documents and sizes."""
    rev = http.get(seeded + "/bb:00").json()["_rev"]
    http.delete(seeded + "/bb:00", params={"rev": rev})
    info = http.get(seeded + "/_partition/bb").json()
    assert {k: info[k] for k in ("db_name", "partition", "doc_count", "doc_del_count")} == {
        "db_name": seeded.rsplit("/", 1)[1], "partition": "bb", "doc_count": 11, "doc_del_count": 1}
    assert info["sizes"]["external"] > 0 and set(info["sizes"]) == {"active", "external"}


def test_partition_info_of_an_empty_partition_is_zero(seeded, http):
    """A partition without documents exists with zero counts, as in CouchDB."""
    info = http.get(seeded + "/_partition/zz").json()
    assert (info["doc_count"], info["doc_del_count"]) == (0, 0)


@pytest.mark.parametrize("path", ["/_partition/p", "/_partition/p/_all_docs", "/_partition/p/_find"])
def test_partition_endpoints_of_a_plain_db_are_400(db, http, path):
    """`/_partition/...` of a database that is not partitioned is CouchDB's 400."""
    answer = http.request("POST" if path.endswith("_find") else "GET", db + path, json={"selector": {}})
    assert (answer.status_code, answer.json()) == (400, {"error": "bad_request",
                                                         "reason": "database is not partitioned"})


def test_partition_path_without_a_partition_is_400(pdb, http):
    """`GET /db/_partition` names no partition: 400 `invalid_partition_req`."""
    answer = http.get(pdb + "/_partition")
    assert (answer.status_code, answer.json()["reason"]) == (400, "invalid_partition_req")


@pytest.mark.parametrize("path", ["/_partition/_x", "/_partition/_x/_all_docs", "/_partition//_all_docs"])
def test_an_invalid_partition_name_is_illegal_partition(pdb, http, path):
    """A partition that is empty or starts with `_` is 400 `illegal_partition`."""
    answer = http.get(pdb + path)
    assert (answer.status_code, answer.json()["error"]) == (400, "illegal_partition")


def test_conflicting_partition_query_parameter_is_400(seeded, http):
    """A `partition` query parameter naming another partition than the path is 400."""
    answer = http.get(seeded + "/_partition/aa/_all_docs", params={"partition": "bb"})
    assert answer.status_code == 400


def test_partition_views_are_not_served(seeded, http):
    """The server has no views: a partitioned view is 404, as a global one is."""
    assert http.get(seeded + "/_partition/aa/_design/d/_view/v").status_code == 404


def test_unknown_partition_endpoint_is_404(seeded, http):
    """Only `_all_docs`, `_find`, `_explain` (and views) exist under a partition."""
    assert http.get(seeded + "/_partition/aa/_changes").status_code == 404


# -- _all_docs ----------------------------------------------------------------------------------


def test_partition_all_docs_returns_only_that_partition(seeded, http):
    """`GET /db/_partition/p/_all_docs` lists that partition's documents, in id order."""
    body = http.get(seeded + "/_partition/bb/_all_docs").json()
    assert [r["id"] for r in body["rows"]] == [f"bb:{i:02d}" for i in range(12)]
    assert (body["total_rows"], body["offset"]) == (12, 0)


def test_partition_all_docs_post_takes_keys_of_that_partition_only(seeded, http):
    """`POST .../_all_docs` with keys: a key of another partition is not found."""
    rows = http.post(seeded + "/_partition/aa/_all_docs", json={"keys": ["aa:03", "bb:03"]}).json()["rows"]
    assert rows[0]["id"] == "aa:03"
    assert rows[1] == {"key": "bb:03", "error": "not_found"}


def test_partition_all_docs_clamps_a_range_to_the_partition(seeded, http):
    """A range reaching past the partition is cut at its bounds, as CouchDB does."""
    answer = http.get(seeded + "/_partition/bb/_all_docs", params={"start_key": '"a"', "end_key": '"bb:02"'})
    assert _ids(answer) == ["bb:00", "bb:01", "bb:02"]


def test_partition_all_docs_descending_stays_in_the_partition(seeded, http):
    """`descending=true` lists the partition from its last id, and no further than its first."""
    answer = http.get(seeded + "/_partition/bb/_all_docs", params={"descending": "true"})
    assert _ids(answer) == [f"bb:{i:02d}" for i in reversed(range(12))]


def test_partition_all_docs_offset_counts_within_the_partition(seeded, http):
    """`offset` counts the partition's documents before the start key, not the database's."""
    body = http.get(seeded + "/_partition/bb/_all_docs", params={"start_key": '"bb:05"', "limit": "1"}).json()
    assert (body["offset"], body["rows"][0]["id"]) == (5, "bb:05")


def test_partition_all_docs_scans_only_that_partition(seeded, http):
    """The partition's rows are a range of the id index: limit/skip inside it page correctly."""
    answer = http.get(seeded + "/_partition/cc/_all_docs", params={"skip": "10", "limit": "5"})
    assert _ids(answer) == ["cc:10", "cc:11"]


# -- _find and _explain -------------------------------------------------------------------------


def test_partition_find_returns_only_that_partition(seeded, http):
    """`POST .../_partition/p/_find` matches documents of that partition only."""
    answer = http.post(seeded + "/_partition/cc/_find", json={"selector": {"n": {"$lt": 3}}})
    assert _ids(answer) == ["cc:00", "cc:01", "cc:02"]


def test_partition_find_without_index_searches_the_id_range(seeded, http):
    """Without an index a partition query is an id range search, not a scan of the database."""
    plan = http.post(seeded + "/_partition/cc/_explain", json={"selector": {"n": 1}}).json()
    assert plan["index"]["name"] == "_all_docs"
    assert any(line.startswith("SEARCH") and "id>?" in line for line in plan["query_plan"]), plan["query_plan"]


def test_partition_find_uses_a_partitioned_index_as_a_range(seeded, http):
    """In a partitioned database an index is partitioned by default; a partition query
    searches it from its leading partition column."""
    _index(http, seeded, ["n"], name="by-n")
    plan = http.post(seeded + "/_partition/aa/_explain", json={"selector": {"n": {"$gt": 5}}}).json()
    assert plan["index"]["name"] == "by-n" and plan["index"]["partitioned"] is True
    assert any(line.startswith("SEARCH") and "mango_" in line for line in plan["query_plan"]), plan["query_plan"]
    answer = http.post(seeded + "/_partition/aa/_find", json={"selector": {"n": {"$gt": 9}}})
    assert _ids(answer) == ["aa:10", "aa:11"]


def test_partition_explain_names_the_partition(seeded, http):
    """`_explain` of a partition says the database is partitioned and which partition it reads."""
    plan = http.post(seeded + "/_partition/aa/_explain", json={"selector": {}}).json()
    assert (plan["partitioned"], plan["opts"]["partition"]) == (True, "aa")


def test_global_find_does_not_use_a_partitioned_index(seeded, http):
    """A global query of a partitioned database never uses a partitioned index."""
    _index(http, seeded, ["n"], name="by-n")
    plan = http.post(seeded + "/_explain", json={"selector": {"n": 1}}).json()
    assert plan["index"]["name"] == "_all_docs"
    assert sorted(_ids(http.post(seeded + "/_find", json={"selector": {"n": 1}}))) == ["aa:01", "bb:01", "cc:01"]


def test_global_sort_needing_a_partitioned_index_is_refused(seeded, http):
    """A global `_find` sorted by a field only a partitioned index serves is CouchDB's 400."""
    _index(http, seeded, ["n"], name="by-n")
    answer = http.post(seeded + "/_find", json={"selector": {"n": {"$gt": 0}}, "sort": ["n"]})
    assert (answer.status_code, answer.json()) == (400, {
        "error": "no_usable_index", "reason": "No global index exists for this sort, try indexing by the sort fields."})


def test_partition_sort_without_a_partitioned_index_is_refused(seeded, http):
    """A partition `_find` sorted by a field only a global index serves is CouchDB's 400."""
    _index(http, seeded, ["n"], name="global-n", partitioned=False)
    answer = http.post(seeded + "/_partition/aa/_find", json={"selector": {"n": {"$gt": 0}}, "sort": ["n"]})
    assert (answer.status_code, answer.json()["reason"]) == (
        400, "No partitioned index exists for this sort, try indexing by the sort fields.")


def test_global_index_serves_global_queries(seeded, http):
    """An index created with `partitioned: false` serves global queries of a partitioned database."""
    _index(http, seeded, ["n"], name="global-n", partitioned=False)
    plan = http.post(seeded + "/_explain", json={"selector": {"n": 1}}).json()
    assert (plan["index"]["name"], plan["index"]["partitioned"]) == ("global-n", False)


def test_index_list_shows_each_index_partitioned_flag(seeded, http):
    """`GET _index` says of each index whether it is partitioned."""
    _index(http, seeded, ["n"], name="p-n", ddoc="p")
    _index(http, seeded, ["n"], name="g-n", ddoc="g", partitioned=False)
    found = {ix["name"]: ix.get("partitioned") for ix in http.get(seeded + "/_index").json()["indexes"]}
    assert (found["p-n"], found["g-n"]) == (True, False)


def test_index_partitioned_option_must_match_its_design_doc(seeded, http):
    """A design document's indexes are all partitioned or all global: a mismatch is 400."""
    _index(http, seeded, ["n"], name="a", ddoc="d", partitioned=False)
    answer = http.post(seeded + "/_index", json={"index": {"fields": ["kind"]}, "name": "b", "ddoc": "d",
                                                 "partitioned": True})
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_partitioned_option")


def test_partitioned_index_in_a_plain_db_is_refused(db, http):
    """`partitioned: true` in a database that is not partitioned is 400 `invalid_design_doc`."""
    answer = http.post(db + "/_index", json={"index": {"fields": ["n"]}, "partitioned": True})
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_design_doc")


def test_partition_find_pages_by_bookmark_through_the_partition(seeded, http):
    """Bookmark paging inside a partition returns each of its documents exactly once."""
    _index(http, seeded, ["n"], name="by-n")
    seen: list[str] = []
    body = {"selector": {"n": {"$gte": 0}}, "sort": ["n"], "limit": 5}
    for _ in range(10):
        page = http.post(seeded + "/_partition/bb/_find", json=body).json()
        seen += [d["_id"] for d in page["docs"]]
        if len(page["docs"]) < 5:
            break
        body["bookmark"] = page["bookmark"]
    assert seen == [f"bb:{i:02d}" for i in range(12)]


def test_global_find_naming_a_partitioned_index_falls_back_with_a_warning(seeded, http):
    """`use_index` naming a partitioned index in a global query is not used: the answer
    comes from `_all_docs` with CouchDB's warning that the index was not valid for it."""
    _index(http, seeded, ["n"], name="by-n", ddoc="p")
    body = http.post(seeded + "/_find", json={"selector": {"n": 3}, "use_index": ["p", "by-n"]}).json()
    assert sorted(d["_id"] for d in body["docs"]) == ["aa:03", "bb:03", "cc:03"]
    assert "was not used" in body["warning"]
