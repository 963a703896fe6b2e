"""JSON lines in and out: one JSON value per line, as `watch` and `find` print and `load` reads."""

from __future__ import annotations

import json
import sys
from typing import IO, Any, TextIO

__all__ = ["count_lines", "parse_object", "write_line"]


def write_line(value: Any, stream: TextIO | None = None) -> None:
    """Write `value` as one JSON line and flush, so a pipe sees it at once."""
    out = stream if stream is not None else sys.stdout
    out.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
    out.flush()


def parse_object(line: bytes | str) -> dict[str, Any]:
    """One line parsed as a JSON object.

    Raises:
        ValueError: The line is not JSON, or not an object; the message says which.
    """
    try:
        value = json.loads(line)
    except ValueError as exc:  # a UnicodeDecodeError too
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object but {type(value).__name__}")
    return value


def count_lines(file: IO[bytes], chunk: int = 1 << 20) -> int:
    """How many lines a seekable file holds (a last line without a newline counts), read
    in chunks from where it is; it is left there."""
    start = file.tell()
    count, last = 0, b"\n"
    while block := file.read(chunk):
        count += block.count(b"\n")
        last = block[-1:]
    file.seek(start)
    return count + (last != b"\n")
