"""What the commands share in parsing their arguments: the usage error and the JSON and
seq arguments."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["UsageError", "json_argument", "seq_argument"]


class UsageError(Exception):
    """The command line asks for something impossible: one line on stderr, exit status 2."""


def json_argument(text: str, what: str) -> Any:
    """`text` parsed as JSON.

    Raises:
        UsageError: `text` is not JSON.
    """
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{what} is not valid JSON ({exc}): {text}") from None


def seq_argument(text: str) -> Any:
    """A `--since` value as the server will want it: `now`, or a seq. Seqs are opaque, but
    servers with integer seqs (pouchdb-server) want a number where JSON carries it (the
    WebSocket feed's first message), so one written in digits alone is passed as a number."""
    return int(text) if text.isdigit() else text
