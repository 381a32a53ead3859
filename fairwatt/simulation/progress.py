"""A tiny progress bar for long runs, written to a text stream (stderr)."""

from __future__ import annotations

from typing import TextIO


class ProgressBar:
    """``[#######.............]  35%  label`` redrawn in place at most once per percent."""

    def __init__(self, stream: TextIO, label: str = "", width: int = 30) -> None:
        self.stream = stream
        self.label = label
        self.width = width
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total if total > 0 else 100
        if percent == self._shown:
            return
        self._shown = percent
        filled = self.width * percent // 100
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {percent:3d}%  {self.label}")
        if percent >= 100:
            self.stream.write("\n")
        self.stream.flush()
