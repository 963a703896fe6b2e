"""Progress of long work on stderr: a tqdm bar on a terminal, plain periodic lines elsewhere.

tqdm comes with the `cli` extra; without it a terminal gets the plain lines too. Plain lines
carry no carriage returns or escape codes, so a log file or CI output stays readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

try:  # pragma: no cover - depends on the environment
    from tqdm import tqdm as _tqdm  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # pragma: no cover
    _tqdm = None

__all__ = ["PLAIN_INTERVAL", "Progress"]

PLAIN_INTERVAL = 5.0
"""Seconds between two plain progress lines."""


class Progress:
    """One job's progress: call it as `progress(done, total)` (the shape `backup`, `restore`
    and `replicate` report in) or `advance(n)`, then `close()` (or use it as a context manager).

    Args:
        label: What is done, e.g. `"load orders"`; starts every line.
        unit: What is counted, e.g. `"docs"`.
        total: How many there will be, when known (for the percentage and the ETA).
        stream: Where the progress goes (stderr by default).
        bar: Draw a bar; `None` draws one when `stream` is a terminal and tqdm is installed.
        interval: Seconds between plain lines.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        label: str,
        *,
        unit: str = "docs",
        total: int | None = None,
        stream: TextIO | None = None,
        bar: bool | None = None,
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.unit = unit
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.closed = False
        self.started = self.last_line = clock()
        if bar is None:
            bar = _tqdm is not None and self.stream.isatty()
        self._bar: Any = None
        if bar and _tqdm is not None:
            self._bar = _tqdm(desc=label, unit=f" {unit}", total=total, file=self.stream,
                              dynamic_ncols=True, smoothing=0.1)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __call__(self, done: int, total: int | None = None) -> None:
        """Report that `done` are done out of `total` (`None`: unknown, or as before)."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()
        self.advance(done - self.done)

    def advance(self, count: int = 1) -> None:
        """Report `count` more done."""
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = self.clock()
        if now - self.last_line >= self.interval:
            self.last_line = now
            self._line(now)

    def close(self) -> None:
        """End the bar, or write the final plain line (once)."""
        if self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self._bar.close()
        else:
            self._line(self.clock(), final=True)

    def _line(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.label}: {self.done}"
        if self.total is not None and not final:
            text += f"/{self.total} {self.unit} ({100 * self.done / max(self.total, 1):.0f}%)"
        else:
            text += f" {self.unit}"
        text += f" in {elapsed:.1f}s, {rate:.0f} {self.unit}/s"
        if self.total is not None and not final and rate > 0:
            text += f", ETA {max(self.total - self.done, 0) / rate:.0f}s"
        print(text, file=self.stream, flush=True)
