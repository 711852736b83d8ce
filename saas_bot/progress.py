"""One progress display for a command with several stages (reading files, extracting, embedding).

On a terminal it is one tqdm bar that is reset and relabelled at each stage (never two bars fighting over
the cursor, which is what wrote ``ESC[A`` codes into piped output, issue 16). When the stream is not a
terminal (a pipe, a log file, CI) it degrades to plain lines: one when a stage starts, at most one every
``interval`` seconds while it runs, and one when it ends, e.g. ``Embedding chunks: 120/480 chunks``.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

# Seconds between two plain progress lines of one stage when not on a terminal (a log stays short).
PLAIN_INTERVAL_SECONDS = 5.0


class StageProgress:
    """``update(label, done, total, unit)`` for each step; ``close()`` at the end (or use ``with``).

    Args:
        stream: where to write (default ``sys.stderr``, like tqdm); its ``isatty()`` picks the display.
        enabled: False writes nothing (``--quiet``).
        interval: seconds between plain lines (not on a terminal).
        tty: force the terminal (True) or plain (False) display; None asks ``stream.isatty()``.
    """

    def __init__(self, *, stream: TextIO | None = None, enabled: bool = True,
                 interval: float = PLAIN_INTERVAL_SECONDS, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interval = interval
        isatty = getattr(self.stream, "isatty", None)
        self.tty = tty if tty is not None else bool(isatty and isatty())
        self._bar: tqdm | None = None
        self._label: str | None = None
        self._last_line = 0.0
        self._last_done = -1
        self._done = 0
        self._total = 0
        self._unit = ""

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, label: str, done: int, total: int, unit: str = "") -> None:
        """Stage ``label`` has ``done`` of ``total`` items (``unit``, e.g. "file", "chunk") done."""
        if not self.enabled:
            return
        if label != self._label:
            self._finish_plain()
            self._label, self._total, self._unit, self._last_done, self._done = label, total, unit, -1, done
            if self.tty:
                if self._bar is None:
                    self._bar = tqdm(total=total, desc=label, unit=unit or "it", file=self.stream, leave=True,
                                     dynamic_ncols=True)
                else:
                    self._bar.reset(total=total)
                    self._bar.set_description(label)
                    self._bar.unit = unit or "it"
            else:
                self._line(done, total)
                return
        self._total, self._done = total, done
        if self.tty:
            self._bar.total = total
            self._bar.update(done - self._bar.n)
        elif done >= total or time.monotonic() - self._last_line >= self.interval:
            self._line(done, total)

    def close(self) -> None:
        """End the display (the last plain line says where each stage ended)."""
        self._finish_plain()
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._label = None

    def _finish_plain(self) -> None:
        if not self.tty and self._label is not None and self._last_done != self._done:
            self._line(self._done, self._total, final=True)

    def _line(self, done: int, total: int, final: bool = False) -> None:
        if done == self._last_done and not final:
            return
        unit = f" {self._unit}s" if self._unit else ""
        self.stream.write(f"{self._label}: {done}/{total}{unit}\n")
        self.stream.flush()
        self._last_line, self._last_done = time.monotonic(), done
