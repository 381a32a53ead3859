"""The OCPP versions we speak and their WebSocket subprotocol names."""

from __future__ import annotations

from enum import Enum


class OcppVersion(Enum):
    """An OCPP version; the value is the version string the ``ocpp`` package uses."""

    V16 = "1.6"
    V201 = "2.0.1"

    @property
    def subprotocol(self) -> str:
        """The WebSocket subprotocol name (``ocpp1.6``, ``ocpp2.0.1``)."""
        return "ocpp" + self.value

    @classmethod
    def from_subprotocol(cls, name: str) -> OcppVersion | None:
        """Return the version for a subprotocol name, ``None`` for an unknown one."""
        for version in cls:
            if version.subprotocol == name:
                return version
        return None


SUPPORTED_SUBPROTOCOLS: tuple[str, ...] = tuple(v.subprotocol for v in OcppVersion)
