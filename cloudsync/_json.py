"""JSON encoding in one place: orjson when installed (the `fast` extra), else the stdlib."""

from __future__ import annotations

import json
from typing import Any

try:  # pragma: no cover - depends on the environment
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]

__all__ = ["HAS_ORJSON", "JSONDecodeError", "dumps", "loads", "std_dumps", "std_loads"]

HAS_ORJSON = _orjson is not None
"""Whether `loads`/`dumps` are orjson's (which refuses lone surrogates itself)."""

JSONDecodeError: tuple[type[Exception], ...]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def std_loads(data: str | bytes | bytearray | memoryview) -> Any:
    """The stdlib parser held to what orjson accepts: UTF-8 only (`json.loads` would
    detect UTF-16 and UTF-32 in bytes) and no `NaN`/`Infinity` (not JSON; CouchDB
    rejects them)."""
    if not isinstance(data, str):
        data = bytes(data).decode("utf-8")  # a UnicodeDecodeError is a ValueError
    return json.loads(data, parse_constant=_reject_constant)


def std_dumps(obj: Any) -> bytes:
    """The stdlib encoder: compact, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


if _orjson is not None:
    JSONDecodeError = (_orjson.JSONDecodeError, ValueError)

    # Bound directly, not wrapped: feeds call them for every row they read or write.
    loads = _orjson.loads
    dumps = _orjson.dumps

else:
    JSONDecodeError = (ValueError,)
    loads = std_loads
    dumps = std_dumps
