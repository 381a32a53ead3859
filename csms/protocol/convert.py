"""Translation helpers shared by the handlers: timestamps, meter values, id tokens, device-model addresses."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from csms.domain.events import ComponentVariable, IdToken, MeterSample
from csms.errors import OcppProtocolError, RpcErrorKind

logger = logging.getLogger(__name__)

ENERGY_REGISTER = "Energy.Active.Import.Register"

# Kilo-units scaled to their base unit (1.6 sends "kWh" etc.; 2.0.1 uses a multiplier).
_KILO_UNITS = {"kWh": "Wh", "kW": "W", "kvarh": "varh", "kvar": "var", "kVA": "VA"}

# 1.6 SampledValue.unit (§7.45) and 2.0.1 UnitOfMeasureType.unit: "Default = Wh if the (default)
# measurand is an Energy type"; no default is given for the others, so a sample without a unit is
# read in its measurand's base unit (first matching prefix), and in none ("") where there is no
# such unit (Power.Factor, RPM).
_DEFAULT_UNITS = (
    ("Energy.Reactive.", "varh"),
    ("Energy.", "Wh"),
    ("Power.Reactive.", "var"),
    ("Power.Factor", ""),
    ("Power.", "W"),
    ("Current.", "A"),
    ("Voltage", "V"),
    ("Frequency", "Hertz"),
    ("SoC", "Percent"),
    ("Temperature", "Celsius"),
)
_V16_UNIT_SPELLINGS = {"Celcius": "Celsius"}  # the 1.6 schema's misspelling, kept for old chargers


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
    charger_id: str,
    evse_id: int,
    transaction_id: str | None,
    meter_values: Iterable[dict[str, Any]],
    *,
    skip_unreadable: bool = False,
) -> list[MeterSample]:
    """1.6 ``MeterValue`` objects (values are decimal strings, units may be kilo-units or absent).

    A value that is not a finite decimal number (or a timestamp that is not a date-time) raises
    PropertyConstraintViolation; with ``skip_unreadable`` it is logged and left out instead (a
    StopTransaction must be stored whatever its transaction data holds).
    """
    samples: list[MeterSample] = []
    for meter_value in meter_values:
        try:
            sampled_at = parse_timestamp(meter_value["timestamp"])
        except OcppProtocolError as exc:
            if not skip_unreadable:
                raise
            logger.warning("charger %s: meter value left out: %s", charger_id, exc.description)
            continue
        for sampled in meter_value["sampledValue"]:
            if sampled.get("format") == "SignedData":
                continue
            raw = _decimal_value(sampled["value"])
            if raw is None:
                if not skip_unreadable:
                    raise OcppProtocolError(
                        RpcErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
                        f"meter value {sampled['value']!r} is not a number",
                    )
                logger.warning(
                    "charger %s: meter value %r is not a number, left out", charger_id, sampled["value"]
                )
                continue
            measurand = sampled.get("measurand", ENERGY_REGISTER)
            unit = sampled.get("unit") or _default_unit(measurand)
            value, unit = _scaled(raw, _V16_UNIT_SPELLINGS.get(unit, unit), 0)
            samples.append(_sample(charger_id, evse_id, transaction_id, sampled_at, sampled, value, unit))
    return samples


def _decimal_value(text: str) -> float | None:
    """A 1.6 Raw sampled value as a float; ``None`` when it is not a finite decimal number."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _default_unit(measurand: str) -> str:
    for prefix, unit in _DEFAULT_UNITS:
        if measurand.startswith(prefix):
            return unit
    return ""


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
            measurand = sampled.get("measurand", ENERGY_REGISTER)
            value, unit = _scaled(
                float(sampled["value"]),
                unit_of_measure.get("unit") or _default_unit(measurand),
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


def start_register_wh(samples: Iterable[MeterSample]) -> float | None:
    """The meter start [Wh] of a 2.0.1 Started event's samples: the whole-EVSE energy register read
    in context ``Transaction.Begin``, else the earliest one; ``None`` when there is none."""
    return _register_wh(samples, "Transaction.Begin", latest=False)


def end_register_wh(samples: Iterable[MeterSample]) -> float | None:
    """The meter stop [Wh] of a 2.0.1 Ended event's samples, which may hold the TxEndedMeasurands
    series of the whole transaction (J02): the register read in context ``Transaction.End``, else
    the latest one; ``None`` when there is none."""
    return _register_wh(samples, "Transaction.End", latest=True)


def begin_register_wh(samples: Iterable[MeterSample]) -> float | None:
    """The whole-EVSE energy register [Wh] read in context ``Transaction.Begin`` among ``samples``
    (an Ended event's TxEndedMeasurands hold it, J02), ``None`` when there is none: unlike
    :func:`start_register_wh`, never the earliest of other readings (an Ended event's only reading
    may be the one at the end)."""
    begin = [s for s in samples if s.context == "Transaction.Begin"]
    return _register_wh(begin, "Transaction.Begin", latest=False)


def begin_time(samples: Iterable[MeterSample]) -> datetime | None:
    """When a transaction began, as an Ended event's meter values tell it: the time of its
    ``Transaction.Begin`` reading, else of its earliest reading (the transaction ran then already);
    ``None`` without meter values."""
    readings = list(samples)
    begin = [s.sampled_at for s in readings if s.context == "Transaction.Begin"]
    if begin:
        return min(begin)
    return min((s.sampled_at for s in readings), default=None)


def _register_wh(samples: Iterable[MeterSample], context: str, *, latest: bool) -> float | None:
    registers = [
        s
        for s in samples
        if s.measurand == ENERGY_REGISTER
        and s.phase is None
        and s.unit == "Wh"
        and s.location in (None, "Outlet")
    ]
    chosen = [s for s in registers if s.context == context] or registers
    if not chosen:
        return None
    pick = max if latest else min
    return pick(chosen, key=lambda s: s.sampled_at).value


def _scaled(value: float, unit: str, multiplier: int) -> tuple[float, str]:
    if unit in _KILO_UNITS:
        return value * 1000.0 * 10.0**multiplier, _KILO_UNITS[unit]
    return value * 10.0**multiplier, unit
