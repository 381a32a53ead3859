"""The one base exception of the tariffs package and its subclasses."""

from __future__ import annotations


class TariffError(Exception):
    """Anything the pricing core refuses: a malformed tariff, session or an impossible request."""


class TariffParseError(TariffError):
    """An OCPI object could not be read; ``path`` names the offending field (``elements[2].restrictions``)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class TariffNotInForceError(TariffError):
    """No version of a tariff is in force at the requested instant."""
