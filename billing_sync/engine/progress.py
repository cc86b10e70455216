"""A one-line progress display for long work: rows, rows/s, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Redraws one line on a terminal; prints a line every ``every`` seconds otherwise."""

    def __init__(self, label: str, *, total: int | None, stream: TextIO = sys.stderr,
                 every: float = 5.0) -> None:  # fmt: skip
        self.label = label
        self.total = total
        self.stream = stream
        self.every = every
        self.started = time.monotonic()
        self._shown_at = float("-inf")
        self.done = 0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.label}: {self.done:,} rows"]
        if self.total:
            parts[0] += f" of {self.total:,} ({100 * self.done / self.total:.0f}%)"
        parts.append(f"{rate:,.0f} rows/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {(self.total - self.done) / rate:.0f}s")
        parts.append(f"{elapsed:.1f}s")
        return "  ".join(parts)

    def update(self, done: int) -> None:
        self.done = done
        interactive = self.stream.isatty()
        if interactive:
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
        elif time.monotonic() - self._shown_at >= self.every:
            self._shown_at = time.monotonic()
            print(self.line(), file=self.stream, flush=True)

    def finish(self) -> None:
        if self.stream.isatty():
            self.stream.write("\n")
        print(self.line(), file=self.stream, flush=True)
