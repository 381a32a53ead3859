"""Translation helpers shared by the handlers: timestamps, meter values, id tokens, device-model addresses."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from csms.domain.events import ComponentVariable, IdToken, MeterSample
from csms.errors import OcppProtocolError, RpcErrorKind

ENERGY_REGISTER = "Energy.Active.Import.Register"

# Kilo-units scaled to their base unit (1.6 sends "kWh" etc.; 2.0.1 uses a multiplier).
_KILO_UNITS = {"kWh": "Wh", "kW": "W", "kvarh": "varh", "kvar": "var", "kVA": "VA"}


def parse_timestamp(text: str) -> datetime:
    """An OCPP date-time as tz-aware UTC; a missing offset is read as UTC."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise OcppProtocolError(
            RpcErrorKind.PROPERTY_CONSTRAINT_VIOLATION, f"not a date-time: {text!r}"
        ) from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """A tz-aware datetime as OCPP wants it: ISO 8601 UTC with ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def optional_timestamp(text: str | None) -> datetime | None:
    return None if text is None else parse_timestamp(text)


def optional_float(value: object) -> float | None:
    """A JSON number (or numeric string) as a float, ``None`` kept."""
    return None if value is None else float(str(value))


def id_token_v201(data: dict[str, Any] | None) -> IdToken | None:
    """A 2.0.1 ``IdTokenType`` as a domain :class:`IdToken`."""
    if data is None:
        return None
    return IdToken(str(data["idToken"]), str(data["type"]))


def component_variable(component: dict[str, Any], variable: dict[str, Any]) -> ComponentVariable:
    """A 2.0.1 ``ComponentType`` and ``VariableType`` as a domain :class:`ComponentVariable`."""
    evse = component.get("evse")
    return ComponentVariable(
        component=str(component["name"]),
        variable=str(variable["name"]),
        component_instance=str(component.get("instance", "")),
        variable_instance=str(variable.get("instance", "")),
        evse_id=None if evse is None else int(evse["id"]),
        connector_id=None if evse is None or "connectorId" not in evse else int(evse["connectorId"]),
    )


def data_as_text(data: object) -> str | None:
    """DataTransfer ``data`` (a string in 1.6, any JSON in 2.0.1) as text."""
    if data is None or isinstance(data, str):
        return data
    return json.dumps(data, separators=(",", ":"))


def samples_v16(
    charger_id: str, evse_id: int, transaction_id: str | None, meter_values: Iterable[dict[str, Any]]
) -> list[MeterSample]:
    """1.6 ``MeterValue`` objects (values are decimal strings, units may be kilo-units)."""
    samples: list[MeterSample] = []
    for meter_value in meter_values:
        sampled_at = parse_timestamp(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            if sampled.get("format") == "SignedData":
                continue
            try:
                raw = float(sampled["value"])
            except ValueError as exc:
                raise OcppProtocolError(
                    RpcErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
                    f"meter value {sampled['value']!r} is not a number",
                ) from exc
            value, unit = _scaled(raw, sampled.get("unit", "Wh"), 0)
            samples.append(_sample(charger_id, evse_id, transaction_id, sampled_at, sampled, value, unit))
    return samples


def _sample(
    charger_id: str,
    evse_id: int,
    transaction_id: str | None,
    sampled_at: datetime,
    sampled: dict[str, Any],
    value: float,
    unit: str,
) -> MeterSample:
    """One domain sample from a sampled value of either version (value already scaled)."""
    return MeterSample(
        charger_id=charger_id,
        evse_id=evse_id,
        transaction_id=transaction_id,
        sampled_at=sampled_at,
        measurand=sampled.get("measurand", ENERGY_REGISTER),
        value=value,
        unit=unit,
        phase=sampled.get("phase"),
        location=sampled.get("location"),
        context=sampled.get("context"),
    )


def samples_v201(
    charger_id: str, evse_id: int, transaction_id: str | None, meter_values: Iterable[dict[str, Any]]
) -> list[MeterSample]:
    """2.0.1 ``MeterValueType`` objects (numeric values, unit with a power-of-ten multiplier)."""
    samples: list[MeterSample] = []
    for meter_value in meter_values:
        sampled_at = parse_timestamp(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            unit_of_measure = sampled.get("unitOfMeasure", {})
            value, unit = _scaled(
                float(sampled["value"]),
                unit_of_measure.get("unit", "Wh"),
                int(unit_of_measure.get("multiplier", 0)),
            )
            samples.append(_sample(charger_id, evse_id, transaction_id, sampled_at, sampled, value, unit))
    return samples


def energy_register_wh(samples: Iterable[MeterSample]) -> float | None:
    """The whole-EVSE active import register [Wh] among ``samples``, ``None`` when absent."""
    for sample in samples:
        if sample.measurand == ENERGY_REGISTER and sample.phase is None and sample.unit == "Wh":
            return sample.value
    return None


def _scaled(value: float, unit: str, multiplier: int) -> tuple[float, str]:
    if unit in _KILO_UNITS:
        return value * 1000.0 * 10.0**multiplier, _KILO_UNITS[unit]
    return value * 10.0**multiplier, unit
