"""The simulation package's exceptions."""

from __future__ import annotations

from fairwatt.errors import FairwattError


class SimulationError(FairwattError):
    """A simulation that cannot run as asked (bad input, a failed solve)."""


class SessionsFileError(SimulationError):
    """A sessions file (CSV) the user has to fix: ``file:line: field: what is wrong``."""

    def __init__(self, detail: str, *, file: str, line: int | None = None, field: str = "") -> None:
        self.detail = detail
        self.file = file
        self.line = line
        self.field = field
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {field}: {detail}" if field else f"{where}: {detail}")
