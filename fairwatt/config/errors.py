"""The config package's one exception: a message that names the file, line, column and field."""

from __future__ import annotations

from fairwatt.errors import FairwattError


class ConfigError(FairwattError):
    """A station file (YAML) or sessions file (CSV) the user has to fix.

    ``str(error)`` reads ``file:line:column: field: what is wrong``; ``line`` and ``column``
    are 1-based and omitted when unknown (e.g. the file cannot be read at all).
    """

    def __init__(
        self,
        detail: str,
        *,
        file: str,
        line: int | None = None,
        column: int | None = None,
        field: str = "",
    ) -> None:
        self.detail = detail
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.field:
            return f"{where}: {self.field}: {self.detail}"
        return f"{where}: {self.detail}"
