"""The csms package's exceptions: one base class, protocol errors carrying their OCPP-J code.

Wire codes differ between versions (1.6J keeps the historic spellings ``FormationViolation``
and ``OccurenceConstraintViolation``, and has no ``RpcFrameworkError``); the one mapping from a
:class:`RpcErrorKind` to the code a charger sees lives in :func:`wire_error_code`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from csms.protocol.versions import OcppVersion


class CsmsError(Exception):
    """Base of every error raised by the csms package."""


class RpcErrorKind(Enum):
    """A version-neutral OCPP-J RPC framework error (OCPP-J 1.6 §4.2.3, 2.0.1 Part 4 §4.3)."""

    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"


_V16_SPELLING: dict[RpcErrorKind, str] = {
    RpcErrorKind.FORMAT_VIOLATION: "FormationViolation",
    RpcErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
    RpcErrorKind.RPC_FRAMEWORK_ERROR: "GenericError",
}


def wire_error_code(kind: RpcErrorKind, version: OcppVersion) -> str:
    """Return the CALLERROR errorCode string for ``kind`` as ``version`` spells it."""
    if version is OcppVersion.V16:
        return _V16_SPELLING.get(kind, kind.value)
    return kind.value


class OcppProtocolError(CsmsError):
    """A received message the protocol layer answers with a CALLERROR.

    ``unique_id`` is the message id to answer; ``"-1"`` when it could not be read.
    """

    def __init__(
        self,
        kind: RpcErrorKind,
        description: str,
        *,
        unique_id: str = "-1",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.unique_id = unique_id
        self.details: dict[str, Any] = details or {}


class ConnectionClosedError(CsmsError):
    """The connection to a charger is closed; raised by ``recv()``/``send()``."""


class CallRefusedError(CsmsError):
    """A CALL the charger may not be sent now (its registration forbids it); nothing was sent."""


class StorageError(CsmsError):
    """A storage operation failed in a way the caller can act on."""


class CommandError(CsmsError):
    """A command could not be built (bad arguments, action unknown to the version)."""


class SettingsError(CsmsError):
    """The CSMS settings are inconsistent."""
