"""What a command to a charger came to: one result type for every command, never ``None``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class CommandOutcome(Enum):
    ACCEPTED = "accepted"
    """The charger answered with an accepting status (or answered data without a status)."""
    REJECTED = "rejected"
    """The charger answered with any other status; ``status`` says which."""
    TIMEOUT = "timeout"
    """No answer within the timeout."""
    NOT_CONNECTED = "not_connected"
    """The charger is not connected to this node, or disconnected before answering."""
    CALL_ERROR = "call_error"
    """The charger answered with a CALLERROR; ``error_code`` says which."""
    NOT_SUPPORTED_BY_VERSION = "not_supported_by_version"
    """The command has no meaning in the OCPP version the charger speaks."""
    NOT_REGISTERED = "not_registered"
    """Not sent: the charger's registration forbids it for now (2.0.1: no RequestStartTransaction or
    RequestStopTransaction while its BootNotification was answered Pending, B02; nothing but a
    TriggerMessage for a BootNotification while Rejected, B03.FR.08)."""


# Statuses meaning the charger took the command on (now, later, or after a reboot).
ACCEPTING_STATUSES = frozenset({"Accepted", "Scheduled", "RebootRequired", "Unlocked", "AcceptedCanceled"})


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The answer to one command; ``payload`` is the charger's CALLRESULT payload (camelCase)."""

    charger_id: str
    action: str | None
    outcome: CommandOutcome
    status: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    error_description: str | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is CommandOutcome.ACCEPTED


def outcome_of(action: str, payload: dict[str, Any]) -> tuple[CommandOutcome, str | None]:
    """Read the outcome from a CALLRESULT payload."""
    if action == "SetVariables":
        statuses = [r.get("attributeStatus") for r in payload.get("setVariableResult", [])]
        accepted = all(s in ACCEPTING_STATUSES for s in statuses)
        summary = "Accepted" if accepted else next(s for s in statuses if s not in ACCEPTING_STATUSES)
        return (CommandOutcome.ACCEPTED if accepted else CommandOutcome.REJECTED), summary
    status = payload.get("status")
    if status is None:
        return CommandOutcome.ACCEPTED, None
    status_text = str(status)
    accepted = status_text in ACCEPTING_STATUSES
    return (CommandOutcome.ACCEPTED if accepted else CommandOutcome.REJECTED), status_text


def result_document(result: CommandResult) -> dict[str, Any]:
    """A :class:`CommandResult` as JSON-ready data (the command channel between nodes, the operator API)."""
    return {
        "charger_id": result.charger_id,
        "action": result.action,
        "outcome": result.outcome.value,
        "status": result.status,
        "payload": result.payload,
        "error_code": result.error_code,
        "error_description": result.error_description,
    }
