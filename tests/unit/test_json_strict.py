"""The stdlib JSON fallback accepts what orjson does: UTF-8 JSON, without `NaN`/`Infinity`."""

from __future__ import annotations

import pytest

from cloudsync._json import JSONDecodeError, std_loads


@pytest.mark.parametrize("text", [b'{"a": NaN}', b'{"a": Infinity}', b'[-Infinity]'])
def test_std_loads_rejects_nan_and_infinity(text):
    """`NaN`, `Infinity` and `-Infinity` are not JSON: a decode error."""
    with pytest.raises(JSONDecodeError):
        std_loads(text)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_std_loads_rejects_utf16_and_utf32_bytes(encoding):
    """Bytes in UTF-16 or UTF-32 (which `json.loads` would detect) are a decode error."""
    with pytest.raises(JSONDecodeError):
        std_loads('{"a": 1}'.encode(encoding))


def test_std_loads_reads_utf8():
    """UTF-8 bytes, memoryviews and text parse as JSON."""
    assert std_loads(memoryview('{"é": 1}'.encode())) == std_loads('{"é": 1}') == {"é": 1}
