"""Request parameters, read one way: from query strings, POST bodies and WebSocket
options messages alike (a mapping of name to value, the value a string or parsed JSON).

Every reader answers a bad value with CouchDB's `400 bad_request`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import bad_request
from .limits import parse_int, parse_json

__all__ = ["bool_param", "int_param", "json_param"]


def bool_param(params: Mapping[str, Any], name: str, default: bool = False, *, reason: str | None = None) -> bool:
    """`params[name]` as a boolean: `"true"`/`"false"` or a JSON boolean; `default` when absent.

    Raises:
        CouchError: 400 `bad_request` for any other value (with `reason`, when given:
            the words CouchDB uses for that parameter).
    """
    value = params.get(name)
    if value is None:
        return default
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    raise bad_request(reason or f"Invalid boolean parameter: {name}")


def int_param(params: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    """`params[name]` as a non-negative integer below 2^63; `default` when absent.

    Raises:
        CouchError: 400 `bad_request` for anything else (see `limits.parse_int`).
    """
    value = params.get(name)
    if value is None:
        return default
    return parse_int(value, name)


def json_param(params: Mapping[str, Any], *names: str, depth: int) -> Any:
    """The value of the first of `names` present in `params`: a string is parsed as JSON
    (at most `depth` levels deep), anything else is taken as already parsed; `None` when
    none is present.

    Raises:
        CouchError: 400 `bad_request` for malformed or too deeply nested JSON.
    """
    for name in names:
        if name in params:
            value = params[name]
            if not isinstance(value, str):
                return value
            return parse_json(value, depth, f"parameter {name}", malformed=f"parameter {name} is not valid JSON")
    return None
