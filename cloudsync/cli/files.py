"""The files commands read: a path, or `-` for stdin."""

from __future__ import annotations

import sys
from typing import IO

from .arguments import UsageError

__all__ = ["close_input", "open_input"]


def open_input(name: str) -> IO[bytes]:
    """`name` open for reading in binary; `-` is stdin.

    Raises:
        UsageError: The file cannot be read.
    """
    if name == "-":
        return sys.stdin.buffer
    try:
        return open(name, "rb")  # noqa: SIM115 - closed by close_input()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None


def close_input(file: IO[bytes]) -> None:
    """Close what `open_input()` opened (stdin stays open)."""
    if file is not sys.stdin.buffer:
        file.close()
