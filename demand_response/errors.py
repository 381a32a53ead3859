"""The demand-response package's exceptions: one base class."""

from __future__ import annotations


class DemandResponseError(Exception):
    """Base of every error raised by the demand-response package."""


class ProgramConfigError(DemandResponseError):
    """A ``demand_response`` YAML section the operator has to fix.

    ``str(error)`` reads ``file:line:column: field: what is wrong`` like the station files'
    :class:`fairwatt.config.ConfigError` (the CLI may re-raise it as one from these attributes).
    """

    def __init__(
        self, detail: str, *, file: str, line: int | None = None, column: int | None = None, field: str = ""
    ) -> None:
        self.detail = detail
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        where = file if line is None else f"{file}:{line}" + ("" if column is None else f":{column}")
        super().__init__(f"{where}: {field}: {detail}" if field else f"{where}: {detail}")


class EventError(DemandResponseError):
    """An event that cannot be enforced as given (bad times, unknown stations, bad signal values)."""
