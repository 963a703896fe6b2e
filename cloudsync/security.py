"""The shape of a database's security object (`/{db}/_security`), checked before it is
sent: a typo such as `"member"` or a bare string for `names` would otherwise be stored
as given by CouchDB (which accepts unknown members) and lock out, or let in, the wrong
people.

```json
{"admins":  {"names": ["ada"], "roles": ["ops"]},
 "members": {"names": ["bob"], "roles": ["readers"]}}
```
Other top-level members (Cloudant's `"cloudant"` API-key permissions,
`"couchdb_auth_only"`) are passed through unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["check_security"]

SECTIONS = ("admins", "members")


def check_security(security: Any) -> dict[str, Any]:
    """A plain copy of `security`, checked to have CouchDB's shape.

    Raises:
        TypeError: `security` or one of its sections is not a mapping.
        ValueError: a section has a member other than `names` and `roles`, or one of
            those is not a list of strings.
    """
    if not isinstance(security, Mapping):
        raise TypeError(f"a security object must be a mapping, not {type(security).__name__}")
    checked = dict(security)
    for section in SECTIONS:
        if section not in checked:
            continue
        part = checked[section]
        if not isinstance(part, Mapping):
            raise TypeError(f"security[{section!r}] must be a mapping of names and roles")
        unknown = set(part) - {"names", "roles"}
        if unknown:
            raise ValueError(f"security[{section!r}] has unknown members {sorted(unknown)}: only names and roles")
        for key, value in part.items():
            if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
                isinstance(v, str) for v in value
            ):
                raise ValueError(f"security[{section!r}][{key!r}] must be a list of strings")
        checked[section] = {key: list(value) for key, value in part.items()}
    return checked
