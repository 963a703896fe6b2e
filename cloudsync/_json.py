"""JSON encoding in one place: orjson when installed (the `fast` extra), else the stdlib."""

from __future__ import annotations

import json
from typing import Any

try:  # pragma: no cover - depends on the environment
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]

__all__ = ["JSONDecodeError", "dumps", "loads"]

JSONDecodeError: tuple[type[Exception], ...]

if _orjson is not None:
    JSONDecodeError = (_orjson.JSONDecodeError, ValueError)

    # Bound directly, not wrapped: feeds call them for every row they read or write.
    loads = _orjson.loads
    dumps = _orjson.dumps

else:
    JSONDecodeError = (ValueError,)

    def loads(data: str | bytes | bytearray | memoryview) -> Any:
        if isinstance(data, memoryview):
            data = bytes(data)
        return json.loads(data)

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
