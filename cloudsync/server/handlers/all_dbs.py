"""`/_all_dbs` parameters: which of the sorted database names a request asks for.

CouchDB reads `_all_dbs` parameters as a view's: `start_key`/`startkey`,
`end_key`/`endkey` (JSON strings), `inclusive_end`, `descending` (the range is then
walked from the high end), `skip` and `limit`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from ..errors import bad_request
from ..params import bool_param, int_param, json_param

__all__ = ["select_names"]


def _name_key(params: Mapping[str, Any], *names: str) -> str | None:
    value = json_param(params, *names, depth=1)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{names[-1]} must be a JSON string (a database name)")
    return value


def select_names(names: list[str], params: Mapping[str, Any]) -> list[str]:
    """The names of sorted `names` that `params` ask for, in the order asked.

    Raises:
        CouchError: 400 `bad_request` for a malformed parameter.
    """
    descending = bool_param(params, "descending")
    start = _name_key(params, "startkey", "start_key")
    end = _name_key(params, "endkey", "end_key")
    inclusive_end = bool_param(params, "inclusive_end", True)
    skip = int_param(params, "skip", 0) or 0
    limit = int_param(params, "limit")
    if descending:
        # Walk from the high end: start is the upper bound, end the lower.
        hi = len(names) if start is None else bisect.bisect_right(names, start)
        lo = 0 if end is None else (bisect.bisect_left if inclusive_end else bisect.bisect_right)(names, end)
        chosen = names[lo:hi][::-1]
    else:
        lo = 0 if start is None else bisect.bisect_left(names, start)
        hi = len(names) if end is None else (bisect.bisect_right if inclusive_end else bisect.bisect_left)(names, end)
        chosen = names[lo:hi]
    return chosen[skip: None if limit is None else skip + limit]
