"""Request bodies CouchDB 3 refuses as invalid JSON: `NaN`/`Infinity` and UTF-16; never stored."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}'])
def test_nan_and_infinity_are_400_and_not_stored(db, http, body):
    """A document with `NaN` or `Infinity` is 400 bad_request, and nothing is stored."""
    r = http.put(db + "/x", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    assert http.get(db + "/x").status_code == 404


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_body_is_400(db, http, encoding):
    """A UTF-16 body (with or without a byte order mark) is 400 bad_request."""
    r = http.post(db + "/_bulk_docs", data='{"docs": [{"_id": "x"}]}'.encode(encoding),
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
