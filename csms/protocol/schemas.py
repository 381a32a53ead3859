"""JSON-schema validation of OCPP payloads against the official schemas shipped with ``ocpp``.

Every schema violation maps to the OCPP-J error kind its meaning calls for (1.6J §4.2.3 table 7,
2.0.1 Part 4 §4.3): a missing field is incomplete (ProtocolError), a wrong type or too long a
string violates the data type, a bad value violates a property, a wrong count violates an
occurrence, and an unexpected field is a format violation.
"""

from __future__ import annotations

import decimal
import json
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.messages import get_validator
from ocpp.v16.enums import Action as V16Action
from ocpp.v201.enums import Action as V201Action

from csms.errors import OcppProtocolError, RpcErrorKind
from csms.protocol.framing import CALL, CALL_RESULT
from csms.protocol.versions import OcppVersion

_KIND_BY_VALIDATOR: dict[str, RpcErrorKind] = {
    "required": RpcErrorKind.PROTOCOL_ERROR,
    "type": RpcErrorKind.TYPE_CONSTRAINT_VIOLATION,
    "maxLength": RpcErrorKind.TYPE_CONSTRAINT_VIOLATION,
    "minLength": RpcErrorKind.TYPE_CONSTRAINT_VIOLATION,
    "additionalProperties": RpcErrorKind.FORMAT_VIOLATION,
    "minItems": RpcErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxItems": RpcErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION,
}

# 1.6 schemas with ``multipleOf: 0.1`` need both schema and payload parsed as Decimal.
_V16_DECIMAL_CALLS = frozenset({"SetChargingProfile", "RemoteStartTransaction"})
_V16_DECIMAL_RESULTS = frozenset({"GetCompositeSchedule"})

_KNOWN_ACTIONS: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: frozenset(a.value for a in V16Action),
    OcppVersion.V201: frozenset(a.value for a in V201Action),
}


def is_known_action(version: OcppVersion, action: str) -> bool:
    """Whether ``action`` exists in ``version`` (unknown: NotImplemented; known: NotSupported)."""
    return action in _KNOWN_ACTIONS[version]


def validate_payload(
    version: OcppVersion, message_type_id: int, action: str, payload: dict[str, Any], unique_id: str
) -> None:
    """Raise :class:`OcppProtocolError` when ``payload`` violates the action's schema.

    ``message_type_id`` is :data:`CALL` for requests and :data:`CALL_RESULT` for responses.
    """
    uses_decimal = version is OcppVersion.V16 and (
        (message_type_id == CALL and action in _V16_DECIMAL_CALLS)
        or (message_type_id == CALL_RESULT and action in _V16_DECIMAL_RESULTS)
    )
    try:
        if uses_decimal:
            validator = get_validator(message_type_id, action, version.value, parse_float=decimal.Decimal)
            instance: Any = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
        else:
            validator = get_validator(message_type_id, action, version.value)
            instance = payload
    except OSError as exc:
        raise OcppProtocolError(
            RpcErrorKind.NOT_SUPPORTED, f"no schema for {action} in OCPP {version.value}", unique_id=unique_id
        ) from exc
    error = _first_error(validator, instance)
    if error is None:
        return
    kind = _KIND_BY_VALIDATOR.get(str(error.validator), RpcErrorKind.PROPERTY_CONSTRAINT_VIOLATION)
    where = "/".join(str(p) for p in error.absolute_path) or "(payload)"
    raise OcppProtocolError(
        kind,
        f"{action}: {where}: {error.message}",
        unique_id=unique_id,
        details={"path": where, "constraint": str(error.validator)},
    )


def _first_error(validator: Any, instance: Any) -> SchemaValidationError | None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return errors[0] if errors else None
